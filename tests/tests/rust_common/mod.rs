//! Helpers shared by the Rust generator's tests: small models (a fixture backbone plus a scorer
//! fitted on seeded images), their programs, and building and running generated crates in a
//! temporary Cargo workspace.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fomo_ad::codegen::program::{self, Identity, ScorerSpec, Source};
use fomo_ad::codegen::rust::{emit, Runtime, RustOptions};
use fomo_ad::codegen::{GeneratedFile, Program};
use fomo_ad::data::{Preprocess, Resize, Scaling};
use fomo_ad::frontend::{load_backbone, BackboneOptions};
use fomo_ad::ir::{Graph, Tensor};
use fomo_ad::scorer::{
    fit_gmm, fit_patchcore, Covariance, Gmm, GmmOptions, GmmScore, GmmScoreMode, PatchCore,
    PatchCoreOptions, Scorer,
};

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

pub use fomo_ad_tests::Rng;

/// A smooth seeded image (a few random gradients plus noise): closer to camera frames than pure
/// noise, so fitted scorers see a plausible spread of features.
pub fn image(width: usize, height: usize, channels: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let params: Vec<f32> = (0..channels * 3)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
        .collect();
    let noise = rng.bytes(width * height * channels);
    let mut out = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let (a, b, base) = (params[c * 3], params[c * 3 + 1], params[c * 3 + 2]);
                let v = 255.0
                    * (0.5 * base
                        + 0.25 * (a * x as f32 / width as f32 * 6.0).sin()
                        + 0.25 * (b * y as f32 / height as f32 * 6.0).cos())
                    + (noise[(y * width + x) * channels + c] as f32 - 128.0) / 8.0;
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// A backbone fixture, optimised as `compile` does, with what the tests need around it.
pub struct Backbone {
    pub graph: Graph,
    pub identity: Identity,
    pub preprocess: Preprocess,
}

impl Backbone {
    pub fn load(relative: &str) -> Backbone {
        let backbone = load_backbone(&repo_path(relative), &BackboneOptions::default())
            .unwrap_or_else(|e| panic!("{relative}: {e}"));
        let mut graph = backbone.graph;
        fomo_ad::passes::optimize(&mut graph, &mut []);
        let input = graph.input_shape();
        let name = Path::new(relative)
            .file_name()
            .expect("fixture paths name a file")
            .to_string_lossy()
            .into_owned();
        Backbone {
            identity: Identity {
                name,
                sha256: backbone.sha256,
            },
            preprocess: Preprocess {
                width: input.w,
                height: input.h,
                channels: input.c,
                resize: Resize::Squash,
                scaling: Scaling::Unit,
            },
            graph,
        }
    }

    /// Seeded images of the backbone's input size, HWC bytes.
    pub fn images(&self, count: usize, seed: u64) -> Vec<Vec<u8>> {
        let p = &self.preprocess;
        (0..count)
            .map(|i| image(p.width, p.height, p.channels, seed * 1000 + i as u64))
            .collect()
    }

    /// The reference: the executor's feature map of `pixels`.
    pub fn features(&self, pixels: &[u8]) -> Tensor {
        fomo_ad::exec::run(&self.graph, &self.preprocess.pixels_to_tensor(pixels))
    }
}

/// PatchCore fitted on the features of `training` images.
pub fn fit_patchcore_on(
    backbone: &Backbone,
    training: &[Vec<u8>],
    pool: usize,
    k: usize,
) -> PatchCore {
    let features: Vec<Tensor> = training.iter().map(|p| backbone.features(p)).collect();
    let options = PatchCoreOptions {
        pool_size: pool,
        neighbors: k,
        sampling_ratio: 0.25,
        projection_dim: 0,
        seed: 7,
    };
    fit_patchcore(&features, &options, &|_, _| {}).expect("PatchCore fits the test features")
}

/// A Gaussian mixture fitted on the features of `training` images.
pub fn fit_gmm_on(
    backbone: &Backbone,
    training: &[Vec<u8>],
    covariance: Covariance,
    components: usize,
    projection_dim: Option<usize>,
    score_mode: GmmScoreMode,
) -> Gmm {
    let features: Vec<Tensor> = training.iter().map(|p| backbone.features(p)).collect();
    let options = GmmOptions {
        components,
        covariance,
        projection_dim,
        score_mode,
        // The fixtures' feature maps are small: pool 2x2 so that enough cells remain.
        pool_kernel: 2,
        pool_stride: 1,
        reg_covar: 1e-3,
        seed: 11,
        ..GmmOptions::default()
    };
    fit_gmm(&features, &options, &|_, _| {}).expect("the GMM fits the test features")
}

/// The lowering's view of a fitted PatchCore.
pub fn patchcore_spec(p: &PatchCore) -> ScorerSpec {
    ScorerSpec::PatchCore {
        pool: p.pool_size,
        neighbors: p.neighbors,
        memory_bank: p.memory_bank.clone(),
        dim: p.dim,
    }
}

/// The lowering's view of a fitted GMM.
pub fn gmm_spec(g: &Gmm) -> ScorerSpec {
    ScorerSpec::Gmm {
        pool_kernel: g.pool_kernel,
        pool_stride: g.pool_stride,
        projection: g.projection.clone(),
        covariance: match g.covariance {
            Covariance::Full => program::Covariance::Full,
            Covariance::Diag => program::Covariance::Diag,
        },
        components: g.components,
        dim: g.dim,
        means: g.means.clone(),
        precisions_cholesky: g.precisions_cholesky.clone(),
        log_weights: g.log_weights.clone(),
        standardize: match g.score_mode {
            GmmScore::Standardized { mean, std } => Some((mean, std)),
            GmmScore::Nll => None,
        },
    }
}

/// A program for `backbone` and a scorer, with the backbone's pixel scaling.
pub fn program(backbone: &Backbone, scorer: ScorerSpec, threshold: f32) -> Program {
    let (scale, offset) = backbone
        .preprocess
        .scaling
        .per_channel(backbone.preprocess.channels);
    let source = Source {
        graph: &backbone.graph,
        scorer,
        input_scale: scale,
        input_offset: offset,
        threshold,
        model: Identity {
            name: "test-model.safetensors".into(),
            sha256: "0".repeat(64),
        },
        backbone: backbone.identity.clone(),
        options: vec![],
    };
    fomo_ad::codegen::lower(&source).unwrap_or_else(|e| panic!("lowering failed: {e}"))
}

/// The scorer's reference cell scores for `pixels`.
pub fn reference_cells(backbone: &Backbone, scorer: &dyn Scorer, pixels: &[u8]) -> Vec<f32> {
    scorer.score(&backbone.features(pixels))
}

pub fn write_files(dir: &Path, files: &[GeneratedFile]) {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("generated paths have a parent"))
            .expect("the temp dir is writable");
        std::fs::write(path, &f.contents).expect("the temp dir is writable");
    }
}

/// `path` for the generated crates' `--runtime-path`: the runtime crate of this repository.
pub fn runtime_path() -> String {
    repo_path("runtime")
        .canonicalize()
        .expect("the runtime crate exists")
        .to_string_lossy()
        .into_owned()
}

/// Emits `program` as crate `name` into `workspace/name`.
pub fn emit_crate(workspace: &Path, program: &Program, name: &str, runtime: Runtime) {
    let options = RustOptions {
        crate_name: name.into(),
        runtime,
    };
    let files = emit(program, &options).expect("the Rust emitter accepts the program");
    write_files(&workspace.join(name), &files);
}

/// `-C target-feature=+fma` where this CPU has it, so that crates built with the `std` feature
/// take the kernels' fused multiply-add path (`kernels::math::mul_add`) and the differential
/// tests check it against the reference; nothing elsewhere.
fn fma_rustflags() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        return "-C target-feature=+fma";
    }
    ""
}

/// Runs `cargo` in `dir` with a target directory inside it; panics with its output when it
/// fails. Callers pass `--offline` where the subcommand takes it: the generated crates must
/// build without a registry.
pub fn cargo(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("RUSTFLAGS", fma_rustflags())
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "cargo {args:?} failed in {}:\n{text}",
        dir.display()
    );
    text
}

/// A harness binary that scores frames with every generated crate named in `crates`: `harness
/// CRATE u8|f32` reads frames (bytes, or little-endian f32 already scaled) on stdin and writes,
/// per frame, the cells then max, mean and anomalous (1 or 0) as little-endian f32; `harness
/// CRATE short` runs a frame one byte short and prints the error. Arenas live in `static`s,
/// which `Arena::new` being a `const fn` allows.
pub fn write_harness(workspace: &Path, crates: &[String]) {
    let dir = workspace.join("harness");
    std::fs::create_dir_all(dir.join("src")).expect("the temp dir is writable");
    let deps: String = crates
        .iter()
        .map(|c| {
            // Standalone crates with their `std` feature (fused multiply-add where the target
            // has it), the others without: the harness compares both paths with the reference.
            let features = if c.ends_with("_standalone") {
                ", features = [\"std\"]"
            } else {
                ""
            };
            format!("{c} = {{ path = \"../{c}\"{features} }}\n")
        })
        .collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"harness\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{deps}"
        ),
    )
    .expect("the temp dir is writable");
    let arms: String = crates
        .iter()
        .map(|c| {
            format!(
                r#"        "{c}" => {{
            static ARENA: Mutex<{c}::Arena> = Mutex::new({c}::Arena::new());
            let mut arena = ARENA.lock().unwrap();
            let len = {c}::INPUT_WIDTH * {c}::INPUT_HEIGHT * {c}::INPUT_CHANNELS;
            let mut scores = {c}::Scores::new();
            let mut emit = |scores: &{c}::Scores| {{
                out.extend(scores.cells.iter().flat_map(|v| v.to_le_bytes()));
                for v in [scores.max_score, scores.mean_score, f32::from(u8::from(scores.anomalous))] {{
                    out.extend(v.to_le_bytes());
                }}
            }};
            match mode {{
                "u8" => {{
                    for frame in input.chunks(len) {{
                        {c}::run(frame, &mut arena, &mut scores).unwrap();
                        emit(&scores);
                    }}
                }}
                "f32" => {{
                    let values: Vec<f32> = input
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    for frame in values.chunks(len) {{
                        {c}::run_f32(frame, &mut arena, &mut scores).unwrap();
                        emit(&scores);
                    }}
                }}
                _ => {{
                    let error = {c}::run(&vec![0u8; len - 1], &mut arena, &mut scores).unwrap_err();
                    out.extend(error.to_string().into_bytes());
                }}
            }}
        }}
"#
            )
        })
        .collect();
    let main = format!(
        r#"use std::io::{{Read, Write}};
use std::sync::Mutex;

fn main() {{
    let args: Vec<String> = std::env::args().collect();
    let (model, mode) = (args[1].as_str(), args[2].as_str());
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).unwrap();
    let mut out: Vec<u8> = Vec::new();
    match model {{
{arms}        _ => panic!("unknown model {{model}}"),
    }}
    std::io::stdout().write_all(&out).unwrap();
}}
"#
    );
    std::fs::write(dir.join("src/main.rs"), main).expect("the temp dir is writable");
}

/// A workspace `Cargo.toml` over `members`.
pub fn write_workspace(workspace: &Path, members: &[String]) {
    let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    std::fs::write(
        workspace.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            list.join(", ")
        ),
    )
    .expect("the temp dir is writable");
}

/// Runs the built harness on `model` and returns its stdout.
pub fn run_harness(workspace: &Path, model: &str, mode: &str, input: &[u8]) -> Vec<u8> {
    let exe = workspace.join("target/release/harness");
    fomo_ad_tests::run_with_stdin(Command::new(exe).args([model, mode]), input)
}

pub fn bytes_to_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `max |a - b| / max |b|` (b the reference): the error relative to the scores' scale.
pub fn relative_error(actual: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(actual.len(), reference.len(), "score lengths differ");
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = actual
        .iter()
        .zip(reference)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    err / scale.max(f32::MIN_POSITIVE)
}

/// `max |a - b| / |b|` over cells whose reference is at least 1 % of the largest: the error of
/// each cell relative to itself (cells near zero are left to [`relative_error`]).
pub fn cellwise_relative_error(actual: &[f32], reference: &[f32]) -> f32 {
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    actual
        .iter()
        .zip(reference)
        .filter(|(_, b)| b.abs() >= 0.01 * scale)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs() / b.abs()))
}
