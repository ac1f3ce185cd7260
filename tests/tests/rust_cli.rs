//! `fomo-ad compile --lang rust` end to end, in process: synthesise a small data set, train both
//! scorers on the keras-style fixture backbone, compile each to a Rust crate (standalone, and
//! with the runtime by path), check that `--check` finds the output up to date, and let
//! `fomo-ad verify --lang rust` build the crate, run it on test images and compare its scores
//! with the reference executor.

use clap::Parser;
use fomo_ad::cli::{run, Cli};

fn cli(args: &[&str]) -> fomo_ad::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("fomo-ad").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    run(cli)
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn compiled_rust_crates_verify_against_the_reference() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    let backbone = fomo_ad_tests::fixture("keras_style.onnx");
    let backbone = path(&backbone);
    let runtime = fomo_ad_tests::repo_root().join("runtime");
    cli(&[
        "synth",
        "--out",
        path(&data),
        "--train",
        "12",
        "--test-good",
        "3",
        "--test-anomalous",
        "3",
        "--size",
        "32",
        "--seed",
        "5",
    ])
    .expect("synth writes the data set");

    for (scorer, train_extra, compile_extra) in [
        ("patchcore", vec![], vec!["--standalone"]),
        (
            "gmm",
            vec!["--components", "2"],
            vec!["--runtime-path", path(&runtime)],
        ),
    ] {
        let model = dir.path().join(format!("{scorer}.safetensors"));
        let mut train = vec![
            "train",
            "--backbone",
            backbone,
            "--data",
            path(&data),
            "--scorer",
            scorer,
            "--out",
            path(&model),
        ];
        train.extend(&train_extra);
        cli(&train).unwrap_or_else(|e| panic!("train {scorer}: {e}"));

        let out = dir.path().join(format!("rust-{scorer}"));
        let mut compile = vec![
            "compile",
            "--model",
            path(&model),
            "--backbone",
            backbone,
            "--lang",
            "rust",
            "--out",
            path(&out),
        ];
        compile.extend(&compile_extra);
        cli(&compile).unwrap_or_else(|e| panic!("compile {scorer}: {e}"));
        let manifest = std::fs::read_to_string(out.join("Cargo.toml")).expect("a Cargo.toml");
        assert!(manifest.contains("name = \"fomo-ad-model\""), "{manifest}");
        assert_eq!(
            manifest.contains("fomo-ad-runtime = { path = "),
            scorer == "gmm",
            "{manifest}"
        );
        assert_eq!(
            out.join("src/kernels/mod.rs").exists(),
            scorer == "patchcore"
        );

        let mut check = compile.clone();
        check.push("--check");
        cli(&check).unwrap_or_else(|e| panic!("compile --check {scorer}: {e}"));

        cli(&[
            "verify",
            "--model",
            path(&model),
            "--backbone",
            backbone,
            "--lang",
            "rust",
            "--generated",
            path(&out),
            "--data",
            path(&data),
            "--images",
            "4",
        ])
        .unwrap_or_else(|e| panic!("verify {scorer}: {e}"));
    }
}

#[test]
fn rust_only_options_and_bad_crate_names_are_usage_errors() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out");
    // Both fail before the model is read, so a missing model file is fine here.
    let model = dir.path().join("missing.safetensors");
    let error = cli(&[
        "compile",
        "--model",
        path(&model),
        "--lang",
        "c",
        "--standalone",
        "--out",
        path(&out),
    ])
    .expect_err("--standalone is for Rust");
    assert!(error.to_string().contains("--lang rust"), "{error}");
    assert!(Cli::try_parse_from([
        "fomo-ad",
        "compile",
        "--model",
        "m",
        "--lang",
        "rust",
        "--out",
        "o",
        "--standalone",
        "--runtime-path",
        "r",
    ])
    .is_err());
    assert!(!out.exists(), "a refused compile writes nothing");
}
