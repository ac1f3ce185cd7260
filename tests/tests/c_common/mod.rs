//! Helpers shared by the C generator's tests: fixtures, deterministic random data, and compiling
//! and running generated C with the system compiler.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use fomo_ad::codegen::program::{Identity, ScorerSpec, Source};
use fomo_ad::codegen::{GeneratedFile, Program};
use fomo_ad::frontend::{load_backbone, BackboneOptions};
use fomo_ad::ir::Graph;

/// The warnings the generated C must compile without (issue: C generator).
pub const STRICT_FLAGS: &[&str] = &[
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wshadow",
    "-Wconversion",
    "-Wdouble-promotion",
    "-Werror",
];

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The two shipped backbones.
pub const SHIPPED: &[&str] = &[
    "models/mobilenetv2_0.35_cut8.onnx",
    "models/mobilenetv2_1.0_cut8.onnx",
];

/// Loads a backbone and runs the optimisation passes, as `compile` does.
pub fn optimized_backbone(relative: &str) -> (Graph, Identity) {
    let backbone = load_backbone(&repo_path(relative), &BackboneOptions::default())
        .unwrap_or_else(|e| panic!("{relative}: {e}"));
    let mut graph = backbone.graph;
    fomo_ad::passes::optimize(&mut graph, &mut []);
    let name = Path::new(relative)
        .file_name()
        .expect("fixture paths name a file")
        .to_string_lossy()
        .into_owned();
    (
        graph,
        Identity {
            name,
            sha256: backbone.sha256,
        },
    )
}

pub use fomo_ad_tests::Rng;

/// A source with pixel scaling to 0..1 and the given scorer, for tests.
pub fn source<'a>(
    graph: &'a Graph,
    backbone: Identity,
    scorer: ScorerSpec,
    threshold: f32,
) -> Source<'a> {
    let c = graph.input_shape().c;
    Source {
        graph,
        scorer,
        input_scale: vec![1.0 / 255.0; c],
        input_offset: vec![0.0; c],
        threshold,
        model: Identity {
            name: "test-model.safetensors".into(),
            sha256: "0".repeat(64),
        },
        backbone,
        options: vec![],
    }
}

pub fn write_files(dir: &Path, files: &[GeneratedFile]) {
    for f in files {
        std::fs::write(dir.join(&f.path), &f.contents).expect("the temp dir is writable");
    }
}

/// Compiles `sources` (paths relative to `dir`) into `dir/name` with the strict warning flags.
pub fn compile(dir: &Path, sources: &[&str], defines: &[String], name: &str) -> PathBuf {
    let exe = dir.join(name);
    let output = Command::new("cc")
        .current_dir(dir)
        .args(STRICT_FLAGS)
        .arg("-O2")
        .args(fomo_ad::codegen::harness::sanitizer_flags())
        .args(defines)
        .args(sources)
        .arg("-o")
        .arg(&exe)
        .arg("-lm")
        .output()
        .expect("a C compiler `cc` is installed");
    assert!(
        output.status.success(),
        "cc failed on {sources:?} in {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs `exe` with `input` on stdin and returns its stdout.
pub fn run(exe: &Path, input: &[u8]) -> Vec<u8> {
    fomo_ad_tests::run_with_stdin(&mut Command::new(exe), input)
}

pub fn f32s_to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn bytes_to_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `max |a - b| / max |b|` (b the reference), and `max |b|`.
pub fn relative_error(actual: &[f32], reference: &[f32]) -> (f32, f32) {
    assert_eq!(actual.len(), reference.len(), "output lengths differ");
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = actual
        .iter()
        .zip(reference)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    (err / scale.max(f32::MIN_POSITIVE), scale)
}

/// A tiny PatchCore scorer over `channels` features (random bank), enough to build a program.
pub fn tiny_patchcore(channels: usize, entries: usize, seed: u64) -> ScorerSpec {
    ScorerSpec::PatchCore {
        pool: 3,
        neighbors: 2.min(entries),
        memory_bank: Rng::new(seed).floats(entries * channels, 0.0, 2.0),
        dim: channels,
    }
}

pub fn lower(source: &Source) -> Program {
    fomo_ad::codegen::lower(source).unwrap_or_else(|e| panic!("lowering failed: {e}"))
}

/// A smooth synthetic RGB-like image (a few low-frequency waves and noise), `defect` adds a
/// bright square: enough structure for realistic feature maps.
pub fn synthetic_image(
    width: usize,
    height: usize,
    channels: usize,
    seed: u64,
    defect: bool,
) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let (fx, fy, phase) = (
        0.05 + 0.1 * rng.unit(),
        0.05 + 0.1 * rng.unit(),
        std::f32::consts::TAU * rng.unit(),
    );
    let mut pixels = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let wave = (fx * x as f32 + phase + c as f32).sin() * (fy * y as f32).cos();
                let mut v = 120.0 + 70.0 * wave + 20.0 * (rng.unit() - 0.5);
                if defect
                    && (width / 3..width / 3 + width / 6).contains(&x)
                    && (height / 2..height / 2 + height / 6).contains(&y)
                {
                    v = 250.0 - 30.0 * c as f32;
                }
                pixels.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    pixels
}

/// The reference input tensor for `pixels` with per-channel scaling, computed exactly as the
/// generated code does (`byte * scale + offset` in f32).
pub fn scaled_input(
    shape: fomo_ad::ir::Shape,
    pixels: &[u8],
    scale: &[f32],
    offset: &[f32],
) -> fomo_ad::ir::Tensor {
    let hwc: Vec<f32> = pixels
        .iter()
        .enumerate()
        .map(|(i, &b)| b as f32 * scale[i % shape.c] + offset[i % shape.c])
        .collect();
    fomo_ad::ir::Tensor::from_hwc(shape, &hwc)
}

/// Runs the library through its public API: reads pixels on stdin, prints the cells, max, mean
/// and verdict (one float per line, verdict as 0/1). It also checks in C that `run_f32` on the
/// same scaled input gives identical results and that null arguments are refused.
pub const RUN_HARNESS: &str = r#"
#include <stdio.h>
#include <string.h>
#include "fomo_ad.h"
#include "fomo_ad_weights.h"

#define PIXELS (FOMO_AD_INPUT_WIDTH * FOMO_AD_INPUT_HEIGHT * FOMO_AD_INPUT_CHANNELS)
#define CELLS (FOMO_AD_GRID_WIDTH * FOMO_AD_GRID_HEIGHT)

#ifdef FOMO_AD_USER_ARENA
static float arena[FOMO_AD_ARENA_SIZE / sizeof(float)];
#define RUN(p, r) fomo_ad_run_with_arena((p), (r), arena)
#define RUN_F32(p, r) fomo_ad_run_f32_with_arena((p), (r), arena)
#else
#define RUN(p, r) fomo_ad_run((p), (r))
#define RUN_F32(p, r) fomo_ad_run_f32((p), (r))
#endif

int main(void)
{
    static uint8_t pixels[PIXELS];
    static float scaled[PIXELS];
    fomo_ad_result result, again;
    size_t i;
    if (fread(pixels, 1, PIXELS, stdin) != PIXELS) {
        return 2;
    }
    if (RUN(NULL, &result) == 0 || RUN(pixels, NULL) == 0) {
        fprintf(stderr, "null arguments were accepted\n");
        return 3;
    }
    if (RUN(pixels, &result) != 0) {
        return 4;
    }
    for (i = 0; i < PIXELS; ++i) {
        const size_t c = i % FOMO_AD_INPUT_CHANNELS;
        scaled[i] = (float)pixels[i] * fomo_ad_input_scale[c] + fomo_ad_input_offset[c];
    }
    if (RUN_F32(scaled, &again) != 0 || memcmp(&result, &again, sizeof result) != 0) {
        fprintf(stderr, "run_f32 differs from run on the same input\n");
        return 5;
    }
    for (i = 0; i < CELLS; ++i) {
        printf("%.9g\n", (double)result.cells[i]);
    }
    printf("%.9g\n%.9g\n%d\n", (double)result.max_score, (double)result.mean_score, result.anomalous);
    return 0;
}
"#;

/// What the run harness printed.
pub struct RunOutput {
    pub cells: Vec<f32>,
    pub max_score: f32,
    pub mean_score: f32,
    pub anomalous: bool,
}

pub fn parse_run_output(stdout: &[u8], cells: usize) -> RunOutput {
    let text = String::from_utf8_lossy(stdout);
    let values: Vec<f32> = text
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("harness printed `{l}`"))
        })
        .collect();
    assert_eq!(
        values.len(),
        cells + 3,
        "harness printed {} values",
        values.len()
    );
    RunOutput {
        cells: values[..cells].to_vec(),
        max_score: values[cells],
        mean_score: values[cells + 1],
        anomalous: values[cells + 2] != 0.0,
    }
}
