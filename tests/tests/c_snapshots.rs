//! Golden outputs of the C emitter for small fixture models (the Keras-style fixture backbone
//! with tiny PatchCore, full GMM and projected diagonal GMM scorers): every generated file is an
//! insta snapshot, reviewed and committed. The same fixtures also compile with the strict flags,
//! with and without a user arena, and agree with the reference; a retrained model changes only
//! the weights, the threshold line and the hash in the headers.

mod c_common;

use c_common::*;
use fomo_ad::artifact::{BackboneSpec, InputSpec, Model, ModelMeta, TrainingInfo};
use fomo_ad::codegen::{self, c, GeneratedFile};
use fomo_ad::data::{Resize, Scaling};
use fomo_ad::frontend::{load_backbone, Backbone, BackboneOptions};
use fomo_ad::pipeline::{feature_graph, FeatureGraph};
use fomo_ad::scorer::{Covariance, Gmm, GmmScore, PatchCore, Scorer};

const FIXTURE: &str = "tests/fixtures/keras_style.onnx";

/// Values with 3 decimals, so the snapshots stay readable.
fn values(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|_| ((lo + (hi - lo) * rng.unit()) * 1000.0).round() / 1000.0)
        .collect()
}

fn tiny_scorer(kind: &str, channels: usize, seed: u64) -> Box<dyn Scorer> {
    let mut rng = Rng::new(seed);
    match kind {
        "patchcore" => Box::new(PatchCore {
            pool_size: 3,
            neighbors: 2,
            memory_bank: values(&mut rng, 3 * channels, 0.0, 3.0),
            dim: channels,
            sampling_ratio: 0.1,
        }),
        "gmm_full" => {
            let (k, d) = (2, channels);
            let mut precisions = vec![0.0; k * d * d];
            for kk in 0..k {
                for i in 0..d {
                    for j in i..d {
                        precisions[(kk * d + i) * d + j] = if i == j {
                            values(&mut rng, 1, 0.5, 1.5)[0]
                        } else {
                            values(&mut rng, 1, -0.1, 0.1)[0]
                        };
                    }
                }
            }
            Box::new(Gmm {
                pool_kernel: 4,
                pool_stride: 2,
                projection: None,
                covariance: Covariance::Full,
                components: k,
                dim: d,
                means: values(&mut rng, k * d, 0.0, 2.0),
                precisions_cholesky: precisions,
                log_weights: vec![0.4f32.ln(), 0.6f32.ln()],
                score_mode: GmmScore::Standardized {
                    mean: -40.0,
                    std: 12.5,
                },
            })
        }
        "gmm_diag" => {
            let (k, d) = (2, 4);
            Box::new(Gmm {
                pool_kernel: 4,
                pool_stride: 2,
                projection: Some(values(&mut rng, d * channels, -0.5, 0.5)),
                covariance: Covariance::Diag,
                components: k,
                dim: d,
                means: values(&mut rng, k * d, -1.0, 1.0),
                precisions_cholesky: values(&mut rng, k * d, 0.5, 2.0),
                log_weights: vec![0.5f32.ln(), 0.5f32.ln()],
                score_mode: GmmScore::Nll,
            })
        }
        other => panic!("no fixture scorer `{other}`"),
    }
}

/// A trained-model stand-in around a tiny scorer, as `artifact::load` would return it.
fn fixture(kind: &str, seed: u64, threshold: f32) -> (Model, FeatureGraph, Backbone) {
    let backbone =
        load_backbone(&repo_path(FIXTURE), &BackboneOptions::default()).expect("the fixture loads");
    let features = feature_graph(&backbone, 1).expect("one layer always works");
    let shape = features.graph.output_shape();
    let input = features.graph.input_shape();
    let scorer = tiny_scorer(kind, shape.c, seed);
    let (rows, cols) = scorer.grid(shape);
    let meta = ModelMeta {
        format_version: fomo_ad::artifact::FORMAT_VERSION,
        generator: "fomo-ad test".into(),
        scorer: scorer.kind(),
        scorer_config: scorer.metadata(),
        input: InputSpec {
            width: input.w,
            height: input.h,
            channels: input.c,
            scaling: Scaling::Unit,
            resize: Resize::Squash,
        },
        feature_grid: [shape.h, shape.w, shape.c],
        grid: [rows, cols],
        backbone: BackboneSpec {
            sha256: backbone.sha256.clone(),
            name: "keras_style.onnx".into(),
            cut: None,
            feature_nodes: features.feature_nodes.clone(),
            layers: 1,
        },
        threshold,
        training: TrainingInfo {
            images: 0,
            seed,
            mean_image_score: 0.0,
            max_image_score: 0.0,
        },
    };
    let model = Model {
        meta,
        scorer,
        path: format!("{kind}.safetensors").into(),
        sha256: format!("{seed:064x}"),
    };
    (model, features, backbone)
}

fn emit(
    kind: &str,
    seed: u64,
    threshold: f32,
    name: &str,
) -> (
    Vec<GeneratedFile>,
    fomo_ad::codegen::Program,
    Model,
    FeatureGraph,
) {
    let (model, features, backbone) = fixture(kind, seed, threshold);
    let program = codegen::program_for_model(&model, &features, &backbone, Vec::new())
        .expect("fixtures lower");
    let files = c::emit(&program, name).expect("fixtures emit");
    (files, program, model, features)
}

const KINDS: &[&str] = &["patchcore", "gmm_full", "gmm_diag"];

#[test]
fn every_generated_file_matches_its_snapshot() {
    for kind in KINDS {
        let (files, ..) = emit(kind, 7, 2.5, "fixture");
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "fixture.h",
                "fixture.c",
                "fixture_kernels.h",
                "fixture_weights.h",
                "fixture_weights.c",
                "CMakeLists.txt",
                "README.md"
            ]
        );
        for f in &files {
            insta::assert_snapshot!(format!("{kind}__{}", f.path), &f.contents);
        }
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    for kind in KINDS {
        let (first, ..) = emit(kind, 7, 2.5, "fixture");
        let (second, ..) = emit(kind, 7, 2.5, "fixture");
        assert_eq!(first, second, "{kind}: two runs differ");
    }
}

#[test]
fn a_retrained_model_changes_only_weights_threshold_and_headers() {
    for kind in KINDS {
        let (old, ..) = emit(kind, 7, 2.5, "fixture");
        let (new, ..) = emit(kind, 8, 3.25, "fixture");
        for (a, b) in old.iter().zip(&new) {
            if a.path == "fixture_weights.c" || a.path == "README.md" {
                continue;
            }
            let changed: Vec<(&str, &str)> = a
                .contents
                .lines()
                .zip(b.contents.lines())
                .filter(|(x, y)| x != y)
                .collect();
            assert_eq!(
                a.contents.lines().count(),
                b.contents.lines().count(),
                "{kind} {}",
                a.path
            );
            for (x, y) in &changed {
                let allowed = x.contains("model:") || x.starts_with("#define FIXTURE_THRESHOLD");
                assert!(
                    allowed,
                    "{kind} {}: a retrain changed `{x}` into `{y}`",
                    a.path
                );
            }
            if a.path == "fixture.h" {
                assert!(changed
                    .iter()
                    .any(|(x, _)| x.starts_with("#define FIXTURE_THRESHOLD")));
            }
        }
        let weights = |files: &[GeneratedFile]| {
            files
                .iter()
                .find(|f| f.path == "fixture_weights.c")
                .map(|f| f.contents.clone())
        };
        assert_ne!(
            weights(&old),
            weights(&new),
            "{kind}: the weights did not change"
        );
    }
}

#[test]
fn fixtures_compile_strictly_and_match_the_reference_with_either_arena() {
    for kind in KINDS {
        let (files, program, model, features) = emit(kind, 7, 2.5, "fomo_ad");
        let dir = tempfile::tempdir().expect("a temp dir");
        write_files(dir.path(), &files);
        std::fs::write(dir.path().join("harness.c"), RUN_HARNESS)
            .expect("the temp dir is writable");
        let sources = ["harness.c", "fomo_ad.c", "fomo_ad_weights.c"];
        let static_arena = compile(dir.path(), &sources, &[], "static_arena");
        let user_arena = compile(
            dir.path(),
            &sources,
            &["-DFOMO_AD_USER_ARENA".into()],
            "user_arena",
        );
        let input = features.graph.input_shape();
        let (scale, offset) = Scaling::Unit.per_channel(input.c);
        for seed in 0..3 {
            let pixels = synthetic_image(input.w, input.h, input.c, seed, seed == 1);
            let reference = model.scorer.score(&fomo_ad::exec::run(
                &features.graph,
                &scaled_input(input, &pixels, &scale, &offset),
            ));
            for exe in [&static_arena, &user_arena] {
                let out = parse_run_output(&run(exe, &pixels), program.grid.cells());
                let (err, _) = relative_error(&out.cells, &reference);
                assert!(
                    err <= 1e-4,
                    "{kind} ({}): relative error {err:e}",
                    exe.display()
                );
                let max = reference.iter().copied().fold(f32::MIN, f32::max);
                assert_eq!(out.anomalous, max >= 2.5);
            }
        }
    }
}

#[test]
fn hostile_node_names_stay_inside_comments() {
    let (model, mut features, backbone) = fixture("patchcore", 7, 2.5);
    let hostile = "x */ #include <evil.h>\n/* \\\n??/ `y` é";
    for node in &mut features.graph.nodes {
        node.name = hostile.to_string();
    }
    let program = codegen::program_for_model(
        &model,
        &features,
        &backbone,
        vec![("note".into(), hostile.into())],
    )
    .expect("fixtures lower");
    let files = c::emit(&program, "fomo_ad").expect("fixtures emit");
    for f in &files {
        assert!(
            !f.contents.contains("evil.h>"),
            "{}: a node name escaped its comment",
            f.path
        );
        assert!(!f.contents.contains("#include <evil"), "{}", f.path);
        assert!(f.contents.is_ascii(), "{} holds non-ASCII text", f.path);
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    write_files(dir.path(), &files);
    std::fs::write(dir.path().join("harness.c"), RUN_HARNESS).expect("the temp dir is writable");
    compile(
        dir.path(),
        &["harness.c", "fomo_ad.c", "fomo_ad_weights.c"],
        &[],
        "harness",
    );
}
