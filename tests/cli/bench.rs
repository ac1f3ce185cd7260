//! `fomo-ad bench` end to end with tiny settings: the width-0.35 backbone, a 10-image synthetic
//! set, 3 frames, and only the rows that build fast (the generated Rust takes a cargo build).

use std::path::Path;

use serde_json::Value;

use super::{fomo_ad, stdout_json};

const BACKBONE: &str = "models/mobilenetv2_0.35_cut8.onnx";

fn positive(value: &Value, what: &str) -> f64 {
    let v = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {value}"));
    assert!(v > 0.0 && v.is_finite(), "{what} = {v}");
    v
}

fn check_stats(stats: &Value, what: &str, frames: u64) {
    let median = positive(&stats["median_ms"], what);
    let (p10, p90) = (
        positive(&stats["p10_ms"], what),
        positive(&stats["p90_ms"], what),
    );
    let (min, max) = (
        positive(&stats["min_ms"], what),
        positive(&stats["max_ms"], what),
    );
    assert!(
        min <= p10 && p10 <= median && median <= p90 && p90 <= max,
        "{what}: {stats}"
    );
    assert_eq!(stats["frames"], frames, "{what}");
}

fn rows(model: &Value) -> Vec<&str> {
    model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["engine"].as_str().unwrap())
        .collect()
}

#[test]
fn bench_trains_both_scorers_and_times_c_reference_and_tract() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let work = dir.path().join("work");
    let args = [
        "bench",
        "--backbone",
        BACKBONE,
        "--train-images",
        "10",
        "--frames",
        "3",
        "--warmup",
        "1",
        "--reference-frames",
        "2",
        "--processes",
        "2",
        "--only",
        "c,reference,tract,peak",
        "--work",
        work.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ];
    let out = fomo_ad(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bench: training patchcore"),
        "progress: {stderr}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for text in [
        "c-O3-native",
        "tract (backbone only)",
        "% peak",
        "target <= 0.5",
    ] {
        assert!(table.contains(text), "table lacks `{text}`:\n{table}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();

    let peak = positive(&report["peak"]["gflops"], "peak");
    assert!(report["peak"]["method"].as_str().unwrap().contains("FMA"));
    assert!(report["machine"]["logical_cpus"].as_u64().unwrap() >= 1);
    assert_eq!(report["settings"]["threads"], 1);
    let models = report["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["patchcore", "gmm"]);
    for model in models {
        let name = model["name"].as_str().unwrap();
        assert_eq!(model["input"], serde_json::json!([96, 96, 3]));
        assert_eq!(
            rows(model),
            ["c-O2", "c-O3-native", "reference", "tract"],
            "{name}"
        );
        let macs = model["backbone_macs"].as_u64().unwrap();
        assert!(macs > 5_000_000, "{name}: width 0.35 has ~5.4 M MACs");
        let arena = model["arena_bytes"].as_u64().unwrap();
        assert!(arena >= model["arena_lower_bound_bytes"].as_u64().unwrap() && arena > 0);
        positive(&model["constant_bytes"], "constant bytes");
        for row in model["rows"].as_array().unwrap() {
            let engine = row["engine"].as_str().unwrap();
            let what = format!("{name} {engine}");
            assert!(row["unavailable"].is_null(), "{what}: {row}");
            assert_eq!(row["macs"].as_u64().unwrap(), macs, "{what}");
            // Generated code: 3 frames in each of 2 processes, pooled.
            let frames = match engine {
                "reference" => 2,
                "tract" => 3,
                _ => 6,
            };
            check_stats(&row["backbone"], &what, frames);
            let backbone_only = row["backbone_only"].as_bool().unwrap();
            assert_eq!(backbone_only, engine == "tract", "{what}");
            if !backbone_only {
                check_stats(&row["scorer"], &what, frames);
                check_stats(&row["total"], &what, frames);
            }
            // GFLOP/s and % of peak follow from the MACs and the median backbone time.
            let gflops = positive(&row["gflops"], &what);
            let median = row["backbone"]["median_ms"].as_f64().unwrap();
            assert!((gflops - 2.0 * macs as f64 / (median * 1e6)).abs() <= 1e-6 * gflops);
            let percent = positive(&row["percent_of_peak"], &what);
            assert!((percent - 100.0 * gflops / peak).abs() <= 1e-6 * percent);
            // Every engine computes what the reference executor computes.
            let error = row["max_relative_error"].as_f64().unwrap();
            assert!(error <= 1e-4, "{what}: relative error {error}");
            if engine.starts_with("c-") {
                assert_eq!(row["arena_bytes"].as_u64().unwrap(), arena, "{what}");
            }
        }
        positive(
            &model["ratios"]["c_native_total_over_tract_backbone"],
            "ratio to tract",
        );
        assert!(model["ratios"]["rust_native_total_over_c_native_total"].is_null());
    }
    // The work folder keeps what was timed: the generated C and its drivers.
    assert!(work.join("models/patchcore/c/fomo_ad.c").is_file());
    assert!(work.join("models/gmm/c/driver-c-O3-native").is_file());
}

fn train_tiny(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let model = dir.join("tiny.safetensors");
    for args in [
        vec![
            "synth",
            "--out",
            data.to_str().unwrap(),
            "--train",
            "6",
            "--test-good",
            "1",
            "--test-anomalous",
            "1",
        ],
        vec![
            "train",
            "--backbone",
            BACKBONE,
            "--data",
            data.to_str().unwrap(),
            "--scorer",
            "gmm",
            "--capacity",
            "low",
            "--out",
            model.to_str().unwrap(),
        ],
    ] {
        let out = fomo_ad(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    model
}

#[test]
fn onnxruntime_row_runs_the_script_or_says_why_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_tiny(dir.path());
    let run = |python: &str| {
        stdout_json(&[
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--backbone",
            BACKBONE,
            "--frames",
            "3",
            "--warmup",
            "1",
            "--only",
            "onnxruntime",
            "--python",
            python,
            "--json",
        ])
    };
    // A missing Python is a row marked unavailable with the reason, not a failed bench.
    let report = run("/nonexistent/python3");
    let row = &report["models"][0]["rows"][0];
    assert_eq!(row["engine"], "onnxruntime");
    let reason = row["unavailable"].as_str().unwrap();
    assert!(reason.contains("/nonexistent/python3"), "{reason}");
    assert!(row["backbone"].is_null());
    assert!(report["peak"].is_null() && report["peak_unavailable"] == "skipped");

    // CI installs scripts/requirements.txt, onnxruntime included.
    let report = run("python3");
    let model = &report["models"][0];
    assert_eq!(model["name"], "tiny");
    let row = &model["rows"][0];
    assert!(row["unavailable"].is_null(), "{row}");
    assert!(row["backbone_only"].as_bool().unwrap());
    check_stats(&row["backbone"], "onnxruntime", 3);
    assert!(row["what"].as_str().unwrap().contains("onnxruntime 1."));
    let error = row["max_relative_error"].as_f64().unwrap();
    assert!(
        error <= 1e-4,
        "onnxruntime differs from the reference by {error}"
    );
}
