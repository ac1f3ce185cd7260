//! train -> test -> score on a small synthetic data set with the shipped backbone.

use std::path::Path;

use super::{fomo_ad, stdout_json};

fn synth(dir: &Path) {
    let out = fomo_ad(&[
        "synth",
        "--out",
        dir.to_str().unwrap(),
        "--train",
        "60",
        "--test-good",
        "16",
        "--test-anomalous",
        "8",
        "--seed",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn train(data: &Path, model: &Path, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = fomo_ad(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_test_report(report: &serde_json::Value, rows: usize) {
    let auroc = report["image_auroc"]
        .as_f64()
        .expect("both classes are present");
    assert!(auroc >= 0.95, "image AUROC {auroc}");
    for key in [
        "f1",
        "threshold",
        "best_f1_threshold",
        "cell_auroc",
        "precision",
        "recall",
    ] {
        assert!(report[key].is_number(), "{key} missing: {report}");
    }
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), 16 + 3 * 8);
    for image in images {
        assert!(image["label"] == "anomaly" || image["label"] == "no anomaly");
        let cells = image["cells"].as_array().unwrap();
        assert_eq!(cells.len(), rows);
        let max = cells
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(
            (max - image["score"].as_f64().unwrap()).abs() < 1e-6,
            "image score is the max cell"
        );
    }
}

#[test]
fn patchcore_and_gmm_train_test_and_score_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data);
    for (scorer, rows, extra) in [
        ("patchcore", 12, vec!["--layers", "2"]),
        ("gmm", 5, vec!["--covariance", "diag"]),
        ("gmm", 5, vec![]),
    ] {
        let model = dir.path().join(format!("{scorer}.safetensors"));
        let again = dir.path().join(format!("{scorer}-again.safetensors"));
        let mut args = vec!["--scorer", scorer, "--seed", "7"];
        args.extend_from_slice(&extra);
        train(&data, &model, &args);
        train(&data, &again, &args);
        assert_eq!(
            std::fs::read(&model).unwrap(),
            std::fs::read(&again).unwrap(),
            "{scorer}: same seed, different artifact"
        );

        let heatmaps = dir.path().join(format!("heatmaps-{scorer}"));
        let report = stdout_json(&[
            "test",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
            "--heatmaps",
            heatmaps.to_str().unwrap(),
        ]);
        check_test_report(&report, rows);
        assert_eq!(
            std::fs::read_dir(&heatmaps).unwrap().count(),
            40,
            "one heatmap per test image"
        );

        let image = data.join("test/good/000.png");
        let scored = stdout_json(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--json",
            image.to_str().unwrap(),
        ]);
        let tested = report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"].as_str().unwrap().ends_with("test/good/000.png"))
            .unwrap();
        assert_eq!(scored[0]["score"], tested["score"], "score and test agree");

        let inspected = stdout_json(&["inspect", "--model", model.to_str().unwrap(), "--json"]);
        assert_eq!(inspected["metadata"]["scorer"], scorer);
        assert_eq!(inspected["metadata"]["training"]["images"], 60);
    }
}

#[test]
fn a_model_is_refused_with_another_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = fomo_ad(&[
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--train",
        "4",
        "--test-good",
        "2",
        "--test-anomalous",
        "1",
    ]);
    assert!(out.status.success());
    let model = dir.path().join("small.safetensors");
    train(
        &data,
        &model,
        &[
            "--scorer",
            "gmm",
            "--components",
            "1",
            "--backbone",
            "models/mobilenetv2_0.35_cut8.onnx",
        ],
    );
    let out = fomo_ad(&[
        "test",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mobilenetv2_0.35_cut8.onnx") && stderr.contains("--backbone"),
        "{stderr}"
    );
    let out = fomo_ad(&[
        "test",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--backbone",
        "models/mobilenetv2_0.35_cut8.onnx",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
