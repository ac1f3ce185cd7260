//! The front end and the reference executor against tract running the same ONNX file: max abs
//! difference <= 1e-4 x max |activation|, before and after the IR passes.

use fomo_ad::frontend::{load_backbone, run_with_tract, BackboneOptions};
use fomo_ad::{exec, passes};
use fomo_ad_tests::{fixture, max_abs, max_abs_diff, seeded_input, shipped_model};

const RELATIVE_TOLERANCE: f32 = 1e-4;

fn check(path: std::path::PathBuf, options: BackboneOptions) {
    let bytes = std::fs::read(&path).expect("fixture exists");
    let backbone = load_backbone(&path, &options).unwrap_or_else(|e| panic!("{e}"));
    let mut optimized = backbone.graph.clone();
    passes::optimize(&mut optimized, &mut []);
    assert!(optimized.nodes.len() <= backbone.graph.nodes.len());
    for seed in 0..2 {
        let input = seeded_input(backbone.graph.input_shape(), seed);
        let expected =
            run_with_tract(&path, &bytes, &options, &input).unwrap_or_else(|e| panic!("{e}"));
        let scale = max_abs(&expected.data);
        assert!(scale > 0.0, "{}: tract output is all zeros", path.display());
        for (what, graph) in [("lowered", &backbone.graph), ("optimized", &optimized)] {
            let ours = exec::run(graph, &input);
            assert_eq!(
                ours.shape,
                expected.shape,
                "{}: {what} shape",
                path.display()
            );
            let diff = max_abs_diff(&ours.data, &expected.data);
            println!(
                "{} ({what}, seed {seed}): max |diff| = {diff:.3e}, max |act| = {scale:.3}",
                path.display()
            );
            assert!(
                diff <= RELATIVE_TOLERANCE * scale,
                "{}: {what} differs from tract by {diff} (max |act| {scale})",
                path.display()
            );
        }
    }
}

#[test]
fn pytorch_style_fixture_matches_tract() {
    check(fixture("pytorch_style.onnx"), BackboneOptions::default());
}

#[test]
fn keras_style_fixtures_match_tract() {
    check(fixture("keras_style.onnx"), BackboneOptions::default());
    check(
        fixture("keras_style_nhwc_out.onnx"),
        BackboneOptions::default(),
    );
}

#[test]
fn dynamic_input_is_made_static_and_matches_tract() {
    check(
        fixture("dynamic_input.onnx"),
        BackboneOptions {
            input_size: Some((32, 24)),
            cut: None,
        },
    );
}

#[test]
fn shipped_backbones_match_tract() {
    check(
        shipped_model("mobilenetv2_1.0_cut8.onnx"),
        BackboneOptions::default(),
    );
    check(
        shipped_model("mobilenetv2_0.35_cut8.onnx"),
        BackboneOptions::default(),
    );
}

#[test]
fn cut_of_a_longer_backbone_matches_tract() {
    let options = BackboneOptions {
        input_size: None,
        cut: Some("block_6_expand_relu".into()),
    };
    check(fixture("mobilenetv2_0.35_to_block_8.onnx"), options);
    check(
        fixture("mobilenetv2_0.35_to_block_8.onnx"),
        BackboneOptions::default(),
    );
}

#[test]
fn input_size_other_than_96_works() {
    let options = BackboneOptions {
        input_size: Some((160, 128)),
        cut: None,
    };
    let backbone = load_backbone(&shipped_model("mobilenetv2_0.35_cut8.onnx"), &options).unwrap();
    let out = backbone.graph.output_shape();
    assert_eq!((out.h, out.w, out.c), (16, 20, 96));
    check(shipped_model("mobilenetv2_0.35_cut8.onnx"), options);
}
