//! Snapshots and properties of the generated Rust crate's files, for small fixture backbones and
//! tiny scorers built directly (no training). Review changes with `cargo insta review`.

mod rust_common;

use fomo_ad::codegen::program::{Covariance, ScorerSpec};
use fomo_ad::codegen::rust::{check_crate_name, emit, Runtime, RustOptions};
use fomo_ad::codegen::{GeneratedFile, Program};
use rust_common::*;

fn tiny_patchcore(dim: usize, entries: usize, pool: usize, neighbors: usize) -> ScorerSpec {
    ScorerSpec::PatchCore {
        pool,
        neighbors,
        memory_bank: Rng::new(1).floats(entries * dim, 0.0, 2.0),
        dim,
    }
}

/// A mixture with upper-triangular (or diagonal) precision factors and a positive diagonal.
fn tiny_gmm(
    channels: usize,
    projected: Option<usize>,
    covariance: Covariance,
    standardize: bool,
) -> ScorerSpec {
    let mut rng = Rng::new(2);
    let dim = projected.unwrap_or(channels);
    let components = 2;
    let precisions_cholesky = match covariance {
        Covariance::Full => {
            let noise = rng.floats(components * dim * dim, -0.2, 0.2);
            (0..components * dim * dim)
                .map(|n| {
                    let (i, j) = ((n / dim) % dim, n % dim);
                    match i.cmp(&j) {
                        std::cmp::Ordering::Less => noise[n],
                        std::cmp::Ordering::Equal => 1.0 + noise[n].abs(),
                        std::cmp::Ordering::Greater => 0.0,
                    }
                })
                .collect()
        }
        Covariance::Diag => rng.floats(components * dim, 0.5, 1.5),
    };
    ScorerSpec::Gmm {
        pool_kernel: 4,
        pool_stride: 2,
        projection: projected.map(|d| rng.floats(d * channels, -0.5, 0.5)),
        covariance,
        components,
        dim,
        means: rng.floats(components * dim, 0.0, 3.0),
        precisions_cholesky,
        log_weights: vec![0.25f32.ln(), 0.75f32.ln()],
        standardize: standardize.then_some((-20.5, 3.25)),
    }
}

fn keras() -> Backbone {
    Backbone::load("tests/fixtures/keras_style.onnx")
}

fn files(program: &Program, runtime: Runtime) -> Vec<GeneratedFile> {
    emit(
        program,
        &RustOptions {
            crate_name: "fomo_ad_model".into(),
            runtime,
        },
    )
    .expect("the Rust emitter accepts the program")
}

fn file<'a>(files: &'a [GeneratedFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no generated {path}"))
        .contents
}

#[test]
fn patchcore_crate_files() {
    let b = keras();
    let program = program(&b, tiny_patchcore(16, 6, 3, 2), 1.5);
    let files = files(&program, Runtime::Version);
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["Cargo.toml", "README.md", "src/lib.rs", "src/weights.rs"]
    );
    for f in &files {
        insta::assert_snapshot!(
            format!("patchcore_{}", f.path.replace('/', "_")),
            f.contents
        );
    }
}

#[test]
fn gmm_lib_rs_for_each_covariance_projection_and_score() {
    let b = keras();
    for (name, spec) in [
        (
            "gmm_full_standardized",
            tiny_gmm(16, None, Covariance::Full, true),
        ),
        (
            "gmm_diag_projected_nll",
            tiny_gmm(16, Some(4), Covariance::Diag, false),
        ),
    ] {
        let program = program(&b, spec, 2.5);
        insta::assert_snapshot!(name, file(&files(&program, Runtime::Version), "src/lib.rs"));
    }
}

#[test]
fn every_backbone_kernel_and_in_place_step_is_emitted() {
    // Pad, pooling, concatenation and a per-channel affine (planned in place) survive the passes.
    let b = Backbone::load("tests/fixtures/pytorch_style.onnx");
    let channels = b.graph.output_shape().c;
    let program = program(&b, tiny_patchcore(channels, 4, 1, 1), 1.0);
    let lib = files(&program, Runtime::Version);
    let lib = file(&lib, "src/lib.rs");
    for call in [
        "kernels::conv2d(",
        "kernels::conv2d_depthwise(",
        "kernels::conv2d_pointwise(",
        "kernels::avg_pool(",
        "kernels::max_pool(",
        "kernels::copy_channels(",
    ] {
        assert!(lib.contains(call), "no {call} in the pytorch_style crate");
    }
    insta::assert_snapshot!("pytorch_style_lib_rs", lib);
}

#[test]
fn standalone_crates_copy_the_runtime_kernels_verbatim_and_depend_on_nothing() {
    let b = keras();
    let program = program(&b, tiny_patchcore(16, 6, 3, 2), 1.5);
    let files = files(&program, Runtime::Standalone);
    let manifest = file(&files, "Cargo.toml");
    assert!(!manifest.contains("[dependencies]"), "{manifest}");
    assert!(file(&files, "src/lib.rs").contains("pub mod kernels;"));
    let kernels_dir = repo_path("runtime/src/kernels");
    let mut copied = 0;
    for entry in std::fs::read_dir(&kernels_dir).expect("the runtime sources exist") {
        let path = entry.expect("readable entry").path();
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let source = std::fs::read_to_string(&path).expect("readable source");
        let generated = file(&files, &format!("src/kernels/{name}"));
        assert!(generated.starts_with("// @generated by fomo-ad"));
        assert!(
            generated.ends_with(&source),
            "src/kernels/{name} is not the runtime's file"
        );
        copied += 1;
    }
    assert_eq!(files.len(), 4 + copied);
}

#[test]
fn manifests_name_the_runtime_by_version_or_by_path() {
    let b = keras();
    let program = program(&b, tiny_patchcore(16, 6, 3, 2), 1.5);
    let by_version = files(&program, Runtime::Version);
    assert!(
        file(&by_version, "Cargo.toml").contains("\n[dependencies]\nfomo-ad-runtime = \"0.1\"\n")
    );
    let by_path = files(&program, Runtime::Path("../my \"runtime\"".into()));
    assert!(file(&by_path, "Cargo.toml")
        .contains("fomo-ad-runtime = { path = \"../my \\\"runtime\\\"\" }"));
    // The header records the option; quotes never reach a comment.
    assert!(file(&by_path, "src/lib.rs").contains("runtime=path:../my _runtime_"));
}

#[test]
fn output_is_deterministic() {
    let b = keras();
    let make = || {
        let program = program(&b, tiny_gmm(16, Some(4), Covariance::Full, true), 2.5);
        files(&program, Runtime::Standalone)
    };
    assert_eq!(make(), make());
}

#[test]
fn weight_literals_read_back_exactly() {
    let b = keras();
    let program = program(&b, tiny_gmm(16, None, Covariance::Full, true), 2.5);
    let weights = files(&program, Runtime::Version);
    let weights = file(&weights, "src/weights.rs");
    for constant in &program.constants {
        let name = constant.name.to_ascii_uppercase();
        let start = weights
            .find(&format!(
                "pub static {name}: Aligned<[f32; {}]> = Aligned([",
                constant.values.len()
            ))
            .unwrap_or_else(|| panic!("no static {name}"));
        let body = &weights[start..];
        let body = &body
            [body.find("= Aligned([").expect("an array") + 11..body.find("]);").expect("closed")];
        let parsed: Vec<f32> = body
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("{name}: bad literal {s}"))
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&parsed), bits(&constant.values), "{name}");
    }
}

#[test]
fn crate_names_are_checked() {
    for good in ["fomo_ad_model", "my-detector", "Cam2"] {
        assert!(check_crate_name(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "2cam",
        "a b",
        "ünï",
        "crate",
        "std",
        "self",
        "a/b",
        &"x".repeat(65),
    ] {
        let error = check_crate_name(bad).expect_err(bad).to_string();
        assert!(error.contains("--name"), "{error}");
        assert!(!error.contains('\n'));
    }
}
