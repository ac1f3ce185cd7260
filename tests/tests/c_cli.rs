//! `fomo-ad compile --lang c` through the binary: a model trained on a small synthetic data set is
//! compiled, checked (`--check` exit codes), protected against overwriting edited or foreign
//! files, and run through the `examples/c-host` program, whose grid must agree with the reference.

mod c_common;

use std::path::Path;
use std::process::{Command, Output};

use c_common::*;
use fomo_ad::cli::model_args::ModelArgs;
use fomo_ad::pipeline::score_image;
use fomo_ad_tests::fomo_ad_bin;

fn fomo_ad(args: &[&str]) -> Output {
    Command::new(fomo_ad_bin())
        .args(args)
        .output()
        .expect("the fomo-ad binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn write_ppm(path: &Path, width: usize, height: usize, rgb: &[u8]) {
    let mut bytes =
        format!("P6\n# written by the c_cli test\n{width} {height}\n255\n").into_bytes();
    bytes.extend_from_slice(rgb);
    std::fs::write(path, bytes).expect("the temp dir is writable");
}

#[test]
fn compile_check_force_and_the_host_example() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let root = tmp.path();
    let s = |p: &Path| p.to_str().expect("temp paths are UTF-8").to_string();
    let (data, model, out) = (
        root.join("data"),
        root.join("model.safetensors"),
        root.join("lib"),
    );
    assert_ok(
        &fomo_ad(&[
            "synth",
            "--out",
            &s(&data),
            "--train",
            "6",
            "--test-good",
            "1",
            "--test-anomalous",
            "1",
        ]),
        "synth",
    );
    assert_ok(
        &fomo_ad(&[
            "train",
            "--data",
            &s(&data),
            "--scorer",
            "patchcore",
            "--sampling-ratio",
            "0.5",
            "--out",
            &s(&model),
        ]),
        "train",
    );
    let (model_s, out_s) = (s(&model), s(&out));
    let compile = |extra: &[&str]| {
        let mut args = vec![
            "compile", "--model", &model_s, "--lang", "c", "--out", &out_s,
        ];
        args.extend_from_slice(extra);
        fomo_ad(&args)
    };

    // A bad name fails before anything is written.
    let bad = compile(&["--name", "int"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("keyword"),
        "{}",
        text(&bad.stderr)
    );
    assert!(
        !out.exists(),
        "a failed compile created the output directory"
    );

    let first = compile(&[]);
    assert_ok(&first, "compile");
    assert!(
        text(&first.stdout).contains("lower bound"),
        "{}",
        text(&first.stdout)
    );
    for file in [
        "fomo_ad.h",
        "fomo_ad.c",
        "fomo_ad_weights.c",
        "fomo_ad_kernels.h",
        "CMakeLists.txt",
        "README.md",
        ".fomo-ad-manifest",
    ] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    let check = compile(&["--check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );

    // A hand edit: --check exits 1 naming the file; a plain compile refuses; --force restores.
    let source = out.join("fomo_ad.c");
    let original = std::fs::read_to_string(&source).expect("generated");
    std::fs::write(
        &source,
        original.replace("run_backbone(arena);", "/* edited */ run_backbone(arena);"),
    )
    .expect("writable");
    let check = compile(&["--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stdout).contains("fomo_ad.c"),
        "{}",
        text(&check.stdout)
    );
    assert!(
        !text(&check.stdout).contains("fomo_ad.h"),
        "{}",
        text(&check.stdout)
    );
    let refused = compile(&[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("edited"),
        "{}",
        text(&refused.stderr)
    );
    assert_ok(&compile(&["--force"]), "compile --force");
    assert_eq!(
        std::fs::read_to_string(&source).expect("generated"),
        original
    );
    assert_eq!(compile(&["--check"]).status.code(), Some(0));

    // A directory fomo-ad did not write is refused, and stays untouched.
    let foreign = root.join("foreign");
    std::fs::create_dir(&foreign).expect("writable");
    std::fs::write(foreign.join("main.c"), "int main(void) { return 0; }\n").expect("writable");
    let refused = fomo_ad(&[
        "compile",
        "--model",
        &s(&model),
        "--lang",
        "c",
        "--out",
        &s(&foreign),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&foreign).expect("exists").count(), 1);

    // The host example, built with the generated library, prints the reference grid.
    let host = repo_path("examples/c-host/main.c");
    let exe = root.join("host");
    let build = Command::new("cc")
        .args(STRICT_FLAGS)
        .arg("-O2")
        .args(fomo_ad::codegen::harness::sanitizer_flags())
        .arg("-I")
        .arg(&out)
        .arg(&host)
        .arg(out.join("fomo_ad.c"))
        .arg(out.join("fomo_ad_weights.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .expect("cc runs");
    assert!(
        build.status.success(),
        "the host example does not build: {}",
        text(&build.stderr)
    );
    let loaded = ModelArgs {
        model: model.clone(),
        backbone: None,
    }
    .load()
    .expect("the trained model loads");
    let threshold = loaded.model.meta.threshold;
    let mut images: Vec<_> = ["test/good", "test/spot", "test/scratch"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(data.join(d))
                .expect("synth wrote it")
                .map(|e| e.expect("readable").path())
        })
        .collect();
    images.sort();
    for image in &images {
        let (pixels, reference) = score_image(
            &loaded.features.graph,
            &loaded.preprocess,
            loaded.model.scorer.as_ref(),
            image,
        )
        .expect("the reference scores the image");
        let ppm = root.join("image.ppm");
        write_ppm(
            &ppm,
            loaded.preprocess.width,
            loaded.preprocess.height,
            &pixels,
        );
        let run = Command::new(&exe)
            .arg(&ppm)
            .output()
            .expect("the host runs");
        let printed = text(&run.stdout);
        let cells: Vec<f32> = printed
            .lines()
            .take(loaded.model.meta.grid[0])
            .flat_map(|l| {
                l.split(|c: char| c == '[' || c == ']' || c.is_whitespace())
                    .filter(|t| !t.is_empty())
                    .map(|t| t.parse::<f32>().expect("a score"))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(cells.len(), reference.len(), "{printed}");
        for (c, r) in cells.iter().zip(&reference) {
            assert!(
                (c - r).abs() <= 1e-3 + 1e-4 * r.abs(),
                "{}: host {c} vs reference {r}\n{printed}",
                image.display()
            );
        }
        let anomalous = reference.iter().any(|&v| v >= threshold);
        assert_eq!(
            run.status.code(),
            Some(i32::from(anomalous)),
            "{}: {printed}",
            image.display()
        );
        assert!(
            printed.contains(if anomalous { "ANOMALY" } else { ": ok" }),
            "{printed}"
        );
    }
}
