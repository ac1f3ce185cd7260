//! What a user would run instead of the generated code: the reference executor (our own
//! interpreter), tract in-process, and onnxruntime through `scripts/bench_onnxruntime.py`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::frontend::{BackboneOptions, TractRunner};
use crate::ir::{Graph, InputLayout, Shape, Tensor};
use crate::scorer::Scorer;

use super::stats::Stats;

/// Per-frame times of the reference executor: backbone (pixels scaled, then the feature graph),
/// scorer, and their sum; with the last frame's cells.
pub struct ReferenceTimings {
    pub backbone_ns: Vec<f64>,
    pub scorer_ns: Vec<f64>,
    pub total_ns: Vec<f64>,
}

/// Times the reference executor on one thread (the scorers use rayon; a one-thread pool keeps
/// them to this core like everything else in the bench).
pub fn time_reference(
    graph: &Graph,
    preprocess: &Preprocess,
    scorer: &dyn Scorer,
    pixels: &[u8],
    frames: usize,
    warmup: usize,
) -> Result<ReferenceTimings> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::usage(format!("cannot build a one-thread pool: {e}")))?;
    Ok(pool.install(|| {
        let mut timings = ReferenceTimings {
            backbone_ns: Vec::with_capacity(frames),
            scorer_ns: Vec::with_capacity(frames),
            total_ns: Vec::with_capacity(frames),
        };
        for i in 0..warmup + frames {
            let t0 = Instant::now();
            let features = crate::exec::run(graph, &preprocess.pixels_to_tensor(pixels));
            let t1 = Instant::now();
            let cells = scorer.score(&features);
            let t2 = Instant::now();
            std::hint::black_box(cells);
            if i >= warmup {
                timings.backbone_ns.push(nanos(t1 - t0));
                timings.scorer_ns.push(nanos(t2 - t1));
                timings.total_ns.push(nanos(t2 - t0));
            }
        }
        timings
    }))
}

/// Times tract's optimised plan of the backbone file (one session, reused frame after frame);
/// returns the per-frame times and the last feature map (CHW).
pub fn time_tract(
    path: &Path,
    bytes: &[u8],
    options: &BackboneOptions,
    input: &Tensor,
    frames: usize,
    warmup: usize,
) -> Result<(Vec<f64>, Tensor)> {
    let mut runner = TractRunner::new(path, bytes, options)?;
    let input = runner.prepare(input)?;
    let mut times = Vec::with_capacity(frames);
    for i in 0..warmup + frames {
        let t0 = Instant::now();
        runner.run(&input)?;
        if i >= warmup {
            times.push(nanos(t0.elapsed()));
        }
    }
    Ok((times, runner.output()?))
}

/// The onnxruntime timing script, embedded so the bench runs from any directory.
pub const ONNXRUNTIME_SCRIPT: &str = include_str!("../../../scripts/bench_onnxruntime.py");

/// onnxruntime's figures for one backbone.
pub struct OnnxRuntimeTimings {
    pub stats: Stats,
    pub version: String,
    /// The feature map (CHW).
    pub output: Tensor,
}

/// Runs the script with `python` on the ONNX bytes and the frame; `Err` is the one-line reason
/// the row is unavailable.
#[allow(clippy::too_many_arguments)]
pub fn time_onnxruntime(
    python: &str,
    onnx: &[u8],
    input: &Tensor,
    input_layout: InputLayout,
    output: (Shape, InputLayout),
    work: &Path,
    frames: usize,
    warmup: usize,
) -> std::result::Result<OnnxRuntimeTimings, String> {
    let write = |name: &str, bytes: &[u8]| {
        let path = work.join(name);
        std::fs::write(&path, bytes)
            .map(|_| path.clone())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let script = write("bench_onnxruntime.py", ONNXRUNTIME_SCRIPT.as_bytes())?;
    let model = write("backbone.onnx", onnx)?;
    let values = match input_layout {
        InputLayout::Nchw => input.data.clone(),
        InputLayout::Nhwc => input.to_hwc(),
    };
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let input_path = write("frame.f32", &raw)?;
    let output_path = work.join("onnxruntime_output.f32");
    let result = Command::new(python)
        .arg(&script)
        .arg(&model)
        .args([
            "--frames",
            &frames.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
        .arg("--input")
        .arg(&input_path)
        .arg("--output")
        .arg(&output_path)
        .output()
        .map_err(|e| format!("cannot run `{python}`: {e}"))?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "`{python} bench_onnxruntime.py` failed: {}",
            last.trim()
        ));
    }
    #[derive(serde::Deserialize)]
    struct Printed {
        median_ms: f64,
        p10_ms: f64,
        p90_ms: f64,
        min_ms: f64,
        max_ms: f64,
        frames: usize,
        onnxruntime: String,
    }
    let stdout = String::from_utf8_lossy(&result.stdout);
    let printed: Printed = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .map_err(|e| format!("the onnxruntime script printed no JSON ({e})"))?;
    let bytes =
        std::fs::read(&output_path).map_err(|e| format!("{}: {e}", output_path.display()))?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (shape, layout) = output;
    if values.len() != shape.len() {
        return Err(format!(
            "onnxruntime's first output has {} values, the feature map {}",
            values.len(),
            shape.len()
        ));
    }
    Ok(OnnxRuntimeTimings {
        stats: Stats {
            median_ms: printed.median_ms,
            p10_ms: printed.p10_ms,
            p90_ms: printed.p90_ms,
            min_ms: printed.min_ms,
            max_ms: printed.max_ms,
            frames: printed.frames,
        },
        version: printed.onnxruntime,
        output: match layout {
            InputLayout::Nchw => Tensor::from_vec(shape, values),
            InputLayout::Nhwc => Tensor::from_hwc(shape, &values),
        },
    })
}

fn nanos(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64
}
