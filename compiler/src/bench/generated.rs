//! Times the generated C and Rust: each is built with a timing driver that runs one frame many
//! times and prints its per-frame times as one JSON object (parsed by [`Timings::parse`]).
//!
//! Stages, for both languages: the backbone is the pixels scaled into the arena plus the
//! backbone proper (what `run` does before scoring), the scorer is the cell scores from the
//! feature map, and the total is a separate loop over the public `run`, the call an application
//! makes. The driver also prints the cells of both paths so the bench can check that they agree
//! with each other and with the reference executor.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::codegen::{self, GeneratedFile, Program};
use crate::error::{Error, Result};

/// What a timing driver prints.
#[derive(Debug, serde::Deserialize)]
pub struct Timings {
    pub backbone_ns: Vec<f64>,
    pub scorer_ns: Vec<f64>,
    pub total_ns: Vec<f64>,
    /// Cells after the staged loop (backbone then scorer).
    pub staged_cells: Vec<f32>,
    /// Cells after the loop over the public `run`.
    pub cells: Vec<f32>,
}

impl Timings {
    /// Adds the timings of another process of the same driver `exe`, which must have given the
    /// same cells.
    pub fn pool(&mut self, exe: &Path, more: Timings) -> Result<()> {
        if more.cells != self.cells || more.staged_cells != self.staged_cells {
            return Err(Error::input(
                exe,
                "the timing driver gave different cells in two runs on the same frame",
            ));
        }
        self.backbone_ns.extend(more.backbone_ns);
        self.scorer_ns.extend(more.scorer_ns);
        self.total_ns.extend(more.total_ns);
        Ok(())
    }

    fn parse(exe: &Path, stdout: &[u8]) -> Result<Timings> {
        let text = String::from_utf8_lossy(stdout);
        let line = text.lines().last().unwrap_or("");
        serde_json::from_str(line).map_err(|e| {
            Error::input(
                exe,
                format!("the timing driver printed no timings JSON ({e})"),
            )
        })
    }
}

/// Symbol prefix of the generated C library.
const C_NAME: &str = "fomo_ad";

/// The C timing driver. It includes the generated `fomo_ad.c` to reach its static stages
/// (`load_pixels`, `run_backbone`, `run_scorer`), as tests/tests/c_backbone.rs does; the
/// weights are compiled separately, as in a user's build. `INPUT_OFFSET` (floats) is defined on
/// the command line.
const C_DRIVER: &str = r#"#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "fomo_ad.c"

static uint8_t pixels[FOMO_AD_INPUT_WIDTH * FOMO_AD_INPUT_HEIGHT * FOMO_AD_INPUT_CHANNELS];

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void print_times(const char *key, const double *values, long n)
{
    long i;
    printf("\"%s\":[", key);
    for (i = 0; i < n; ++i) printf(i ? ",%.0f" : "%.0f", values[i]);
    printf("],");
}

static void print_cells(const char *key, const float *cells)
{
    long i;
    printf("\"%s\":[", key);
    for (i = 0; i < FOMO_AD_GRID_WIDTH * FOMO_AD_GRID_HEIGHT; ++i) printf(i ? ",%.9g" : "%.9g", (double)cells[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    long frames, warmup, i;
    double *backbone, *scorer, *total;
    fomo_ad_result staged, result;
    FILE *f;
    if (argc != 4) { fprintf(stderr, "usage: driver PIXELS FRAMES WARMUP\n"); return 2; }
    f = fopen(argv[1], "rb");
    if (!f || fread(pixels, 1, sizeof pixels, f) != sizeof pixels) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    fclose(f);
    frames = atol(argv[2]);
    warmup = atol(argv[3]);
    backbone = malloc(sizeof(double) * (size_t)frames);
    scorer = malloc(sizeof(double) * (size_t)frames);
    total = malloc(sizeof(double) * (size_t)frames);
    if (frames < 1 || warmup < 0 || !backbone || !scorer || !total) { fprintf(stderr, "bad frame counts\n"); return 2; }
    for (i = -warmup; i < frames; ++i) {
        double t0, t1, t2;
        t0 = now_ns();
        load_pixels(pixels, arena_storage + INPUT_OFFSET);
        run_backbone(arena_storage);
        t1 = now_ns();
        run_scorer(arena_storage, &staged);
        t2 = now_ns();
        if (i >= 0) { backbone[i] = t1 - t0; scorer[i] = t2 - t1; }
    }
    for (i = -warmup; i < frames; ++i) {
        double t0 = now_ns();
        if (fomo_ad_run(pixels, &result) != 0) { fprintf(stderr, "fomo_ad_run failed\n"); return 3; }
        if (i >= 0) total[i] = now_ns() - t0;
    }
    printf("{");
    print_times("backbone_ns", backbone, frames);
    print_times("scorer_ns", scorer, frames);
    print_times("total_ns", total, frames);
    print_cells("staged_cells", staged.cells);
    printf(",");
    print_cells("cells", result.cells);
    printf("}\n");
    return 0;
}
"#;

/// Writes the generated C for `program` into `dir` and the driver beside it.
pub fn prepare_c(program: &Program, dir: &Path) -> Result<()> {
    let files = codegen::c::emit(program, C_NAME)?;
    write_files(dir, &files)?;
    let driver = dir.join("bench_driver.c");
    std::fs::write(&driver, C_DRIVER).map_err(|e| Error::io(&driver, e))
}

/// Builds the C in `dir` (from [`prepare_c`]) with `flags` into `exe`.
pub fn build_c(
    program: &Program,
    dir: &Path,
    cc: &str,
    flags: &[String],
    exe: &Path,
) -> Result<()> {
    // Every generated .c except the model itself, which the driver includes.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != "fomo_ad.c" && n != "bench_driver.c")
        })
        .collect();
    sources.sort();
    let mut command = Command::new(cc);
    command
        .args(flags)
        .arg(format!("-DINPUT_OFFSET={}", program.input.output.offset))
        .arg("-I")
        .arg(dir)
        .arg(dir.join("bench_driver.c"))
        .args(&sources)
        .arg("-o")
        .arg(exe)
        .arg("-lm");
    run_build(&mut command, dir)
}

/// Runs a timing driver.
pub fn run_driver(exe: &Path, frame: &Path, frames: usize, warmup: usize) -> Result<Timings> {
    let output = Command::new(exe)
        .arg(frame)
        .arg(frames.to_string())
        .arg(warmup.to_string())
        .output()
        .map_err(|e| Error::io(exe, e))?;
    if !output.status.success() {
        return Err(Error::input(
            exe,
            format!(
                "the timing driver failed: {}",
                crate::error::one_line(String::from_utf8_lossy(&output.stderr).trim())
            ),
        ));
    }
    Timings::parse(exe, &output.stdout)
}

/// Package name of the generated Rust crate.
const RUST_PACKAGE: &str = "fomo-ad-model";

/// The Rust timing driver, through the generated crate's public `run` and its hidden
/// `bench_backbone` / `bench_scorer` hooks (the same two stages `run` calls).
const RUST_DRIVER: &str = r#"use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(args.len(), 4, "usage: driver PIXELS FRAMES WARMUP");
    let pixels = std::fs::read(&args[1]).expect("the bench wrote the frame");
    let frames: usize = args[2].parse().expect("FRAMES is a number");
    let warmup: usize = args[3].parse().expect("WARMUP is a number");
    let mut arena = Box::new(fomo_ad_model::Arena::new());
    let mut staged = fomo_ad_model::Scores::new();
    let mut scores = fomo_ad_model::Scores::new();
    let (mut backbone, mut scorer, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..warmup + frames {
        let t0 = Instant::now();
        fomo_ad_model::bench_backbone(&pixels, &mut arena).expect("the frame fits the model");
        let t1 = Instant::now();
        fomo_ad_model::bench_scorer(&mut arena, &mut staged).expect("the arena holds features");
        let t2 = Instant::now();
        if i >= warmup {
            backbone.push((t1 - t0).as_nanos());
            scorer.push((t2 - t1).as_nanos());
        }
    }
    for i in 0..warmup + frames {
        let t0 = Instant::now();
        fomo_ad_model::run(&pixels, &mut arena, &mut scores).expect("the frame fits the model");
        if i >= warmup {
            total.push(t0.elapsed().as_nanos());
        }
    }
    println!(
        "{{\"backbone_ns\":{backbone:?},\"scorer_ns\":{scorer:?},\"total_ns\":{total:?},\"staged_cells\":{:?},\"cells\":{:?}}}",
        staged.cells, scores.cells
    );
}
"#;

/// Writes the generated crate (depending on the runtime at `runtime`) and a driver crate into
/// `dir`: `dir/model`, `dir/driver`.
pub fn prepare_rust(program: &Program, dir: &Path, runtime: codegen::rust::Runtime) -> Result<()> {
    let files = codegen::rust::emit(
        program,
        &codegen::rust::RustOptions {
            crate_name: RUST_PACKAGE.into(),
            runtime,
        },
    )?;
    write_files(&dir.join("model"), &files)?;
    let driver = dir.join("driver");
    let manifest = format!(
        "[package]\nname = \"fomo-ad-bench-driver\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{RUST_PACKAGE} = {{ path = \"../model\", features = [\"std\"] }}\n\n[workspace]\n"
    );
    write_files(
        &driver,
        &[
            GeneratedFile {
                path: "Cargo.toml".into(),
                contents: manifest,
            },
            GeneratedFile {
                path: "src/main.rs".into(),
                contents: RUST_DRIVER.into(),
            },
        ],
    )
}

/// Builds the driver crate in `dir` (from [`prepare_rust`]) in release mode with `rustflags`,
/// in `target`; returns the executable.
pub fn build_rust(dir: &Path, target: &Path, rustflags: &str) -> Result<PathBuf> {
    let driver = dir.join("driver");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&driver)
        .args(["build", "--release", "--quiet", "--offline"])
        .env("CARGO_TARGET_DIR", target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", rustflags);
    run_build(&mut cargo, &driver)?;
    Ok(target.join("release/fomo-ad-bench-driver"))
}

fn write_files(dir: &Path, files: &[GeneratedFile]) -> Result<()> {
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, &file.contents).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

fn run_build(command: &mut Command, dir: &Path) -> Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .map_err(|e| Error::input(dir, format!("cannot run `{program}`: {e}")))?;
    if !output.status.success() {
        let first = crate::codegen::first_error_line(&output.stderr);
        return Err(Error::input(
            dir,
            format!("building with `{program}` failed: {first}"),
        ));
    }
    Ok(())
}
