//! Differential test of the generated Rust crates: each model is emitted twice (runtime by path,
//! and standalone), built with `cargo build --release` in a temporary workspace (offline: the
//! crates need no registry), checked with `cargo clippy -- -D warnings` and `cargo fmt --check`,
//! run on seeded frames through a harness, and its cell scores compared with the reference
//! executor followed by the reference scorer: max error <= 1e-4 of the scores' scale.

mod rust_common;

use fomo_ad::codegen::rust::Runtime;
use fomo_ad::codegen::Program;
use fomo_ad::scorer::{Covariance, GmmScoreMode, Scorer};
use rust_common::*;

/// One model under test.
struct Case {
    name: &'static str,
    backbone: Backbone,
    scorer: Box<dyn Scorer>,
    program: Program,
}

fn cases() -> Vec<Case> {
    let keras = || Backbone::load("tests/fixtures/keras_style.onnx");
    let pytorch = || Backbone::load("tests/fixtures/pytorch_style.onnx");
    let shipped = || Backbone::load("models/mobilenetv2_0.35_cut8.onnx");
    let mut cases = Vec::new();
    let mut add = |name, backbone: Backbone, scorer: Box<dyn Scorer>, spec, threshold| {
        let program = program(&backbone, spec, threshold);
        cases.push(Case {
            name,
            backbone,
            scorer,
            program,
        });
    };

    let b = keras();
    let p = fit_patchcore_on(&b, &b.images(8, 1), 3, 3);
    add(
        "keras_patchcore",
        b,
        Box::new(p.clone()),
        patchcore_spec(&p),
        2.0,
    );

    let b = keras();
    let g = fit_gmm_on(
        &b,
        &b.images(8, 2),
        Covariance::Full,
        3,
        None,
        GmmScoreMode::Standardized,
    );
    add("keras_gmm_full", b, Box::new(g.clone()), gmm_spec(&g), 3.0);

    let b = keras();
    let g = fit_gmm_on(
        &b,
        &b.images(8, 3),
        Covariance::Diag,
        2,
        Some(6),
        GmmScoreMode::Nll,
    );
    add(
        "keras_gmm_diag_projected",
        b,
        Box::new(g.clone()),
        gmm_spec(&g),
        10.0,
    );

    // Pad, average and max pooling, concatenation and a per-channel affine survive the passes
    // here, so every backbone kernel is exercised.
    let b = pytorch();
    let p = fit_patchcore_on(&b, &b.images(4, 4), 1, 1);
    add(
        "pytorch_patchcore",
        b,
        Box::new(p.clone()),
        patchcore_spec(&p),
        2.0,
    );

    let b = shipped();
    let p = fit_patchcore_on(&b, &b.images(6, 5), 3, 2);
    add(
        "shipped_patchcore",
        b,
        Box::new(p.clone()),
        patchcore_spec(&p),
        2.0,
    );

    let b = shipped();
    let g = fit_gmm_on(
        &b,
        &b.images(10, 6),
        Covariance::Full,
        2,
        Some(16),
        GmmScoreMode::Standardized,
    );
    add(
        "shipped_gmm_full_projected",
        b,
        Box::new(g.clone()),
        gmm_spec(&g),
        3.0,
    );
    cases
}

#[test]
fn generated_crates_build_lint_clean_and_match_the_reference() {
    let cases = cases();
    let workspace = tempfile::tempdir().expect("a temp dir");
    let root = workspace.path();
    let runtime = runtime_path();
    let mut crates = Vec::new();
    for case in &cases {
        for (suffix, mode) in [
            ("path", Runtime::Path(runtime.clone())),
            ("standalone", Runtime::Standalone),
        ] {
            let name = format!("{}_{suffix}", case.name);
            emit_crate(root, &case.program, &name, mode);
            crates.push(name);
        }
    }
    write_harness(root, &crates);
    let mut members = crates.clone();
    members.push("harness".into());
    write_workspace(root, &members);

    cargo(root, &["build", "--offline", "--release", "--workspace"]);
    // With and without the `std` feature (its fused multiply-add is behind a cfg).
    let mut lint = vec!["clippy", "--offline", "--all-features"];
    for name in &crates {
        lint.extend(["-p", name]);
    }
    lint.extend(["--", "-D", "warnings"]);
    cargo(root, &lint);
    let mut fmt = vec!["fmt", "--check"];
    for name in &crates {
        fmt.extend(["-p", name]);
    }
    cargo(root, &fmt);

    for case in &cases {
        // Seeded frames plus the extremes (all black, all white): every valid input must run
        // without a panic and agree with the reference.
        let mut frames = case.backbone.images(4, 100);
        let len = frames[0].len();
        frames.extend([vec![0u8; len], vec![255u8; len]]);
        let cells = case.program.grid.cells();
        let reference: Vec<Vec<f32>> = frames
            .iter()
            .map(|f| reference_cells(&case.backbone, case.scorer.as_ref(), f))
            .collect();
        let stdin: Vec<u8> = frames.concat();
        for suffix in ["path", "standalone"] {
            let name = format!("{}_{suffix}", case.name);
            let output = bytes_to_f32s(&run_harness(root, &name, "u8", &stdin));
            assert_eq!(
                output.len(),
                frames.len() * (cells + 3),
                "{name}: output size"
            );
            let (mut worst, mut worst_cell) = (0.0f32, 0.0f32);
            for (frame, expected) in output.chunks(cells + 3).zip(&reference) {
                let (generated, summary) = frame.split_at(cells);
                worst = worst.max(relative_error(generated, expected));
                worst_cell = worst_cell.max(cellwise_relative_error(generated, expected));
                // The summary is computed from the generated cells themselves.
                let max = generated.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mean = generated.iter().map(|&v| f64::from(v)).sum::<f64>() / cells as f64;
                assert_eq!(summary[0], max, "{name}: max_score");
                assert!((f64::from(summary[1]) - mean).abs() <= 1e-6 * mean.abs().max(1.0));
                assert_eq!(
                    summary[2] == 1.0,
                    max >= case.program.threshold,
                    "{name}: verdict"
                );
            }
            println!(
                "{name}: max |error| / max |score| = {worst:.2e}, max cell relative error = {worst_cell:.2e}"
            );
            assert!(
                worst <= 1e-4,
                "{name}: relative error {worst:e} exceeds 1e-4"
            );
        }
        // `run_f32` on the scaled frames gives exactly what `run` gives on the bytes.
        let name = format!("{}_path", case.name);
        let scaled: Vec<u8> = frames
            .iter()
            .flat_map(|f| case.backbone.preprocess.pixels_to_tensor(f).to_hwc())
            .flat_map(f32::to_le_bytes)
            .collect();
        assert_eq!(
            run_harness(root, &name, "f32", &scaled),
            run_harness(root, &name, "u8", &stdin),
            "{name}: run_f32 and run disagree"
        );
        // A frame one byte short is an error naming the pixels, not a panic.
        let message = String::from_utf8(run_harness(root, &name, "short", &[]))
            .expect("errors print as text");
        assert!(message.contains("pixels"), "{name}: {message}");
    }
}
