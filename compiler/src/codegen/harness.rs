//! Builds generated code with a tiny driver program and runs it on pixel buffers, so the scores
//! of the generated C or Rust can be compared with the reference executor (`fomo-ad verify` and
//! the differential tests). The driver reads raw interleaved HWC `u8` images from files given on
//! the command line and prints one line of cell scores per image, with round-trip precision.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Compiler flags the C is built with for verification (the strict set the generator promises).
pub const C_FLAGS: &[&str] = &[
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Wshadow",
    "-Wconversion",
    "-Wdouble-promotion",
    "-Werror",
];

/// Set to `1` to build every C test driver with AddressSanitizer and UndefinedBehaviorSanitizer
/// (`verify --lang c` and the C differential tests; CI does, see `.ci/run`).
pub const SANITIZE_ENV: &str = "FOMO_AD_C_SANITIZE";

/// AddressSanitizer and UndefinedBehaviorSanitizer; any finding ends the program with an error
/// (`-fno-sanitize-recover=all`), so a test that runs it fails.
pub const SANITIZER_FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
];

/// [`SANITIZER_FLAGS`] when [`SANITIZE_ENV`] asks for them, else none.
pub fn sanitizer_flags() -> &'static [&'static str] {
    match std::env::var(SANITIZE_ENV) {
        Ok(v) if !v.is_empty() && v != "0" => SANITIZER_FLAGS,
        _ => &[],
    }
}

/// Runs generated C (in `dir`, with symbol prefix `prefix`) on each pixel buffer.
pub fn run_c(dir: &Path, prefix: &str, images: &[Vec<u8>], work: &Path) -> Result<Vec<Vec<f32>>> {
    let driver = work.join("driver.c");
    let source = format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include "{prefix}.h"

static uint8_t pixels[{upper}_INPUT_WIDTH * {upper}_INPUT_HEIGHT * {upper}_INPUT_CHANNELS];

int main(int argc, char **argv) {{
    for (int i = 1; i < argc; ++i) {{
        FILE *f = fopen(argv[i], "rb");
        if (!f || fread(pixels, 1, sizeof pixels, f) != sizeof pixels) {{ fprintf(stderr, "cannot read %s\n", argv[i]); return 3; }}
        fclose(f);
        {prefix}_result result;
        if ({prefix}_run(pixels, &result) != 0) {{ fprintf(stderr, "run failed\n"); return 4; }}
        for (int c = 0; c < {upper}_GRID_WIDTH * {upper}_GRID_HEIGHT; ++c) printf("%.9g ", (double)result.cells[c]);
        printf("\n");
    }}
    return 0;
}}
"#,
        upper = prefix.to_uppercase()
    );
    std::fs::write(&driver, source).map_err(|e| Error::io(&driver, e))?;
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let exe = work.join("driver");
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(C_FLAGS)
        .args(sanitizer_flags())
        .arg("-I")
        .arg(dir)
        .args(&sources)
        .arg(&driver)
        .arg("-o")
        .arg(&exe)
        .arg("-lm");
    run_checked(&mut cc, dir)?;
    run_driver(&exe, images, work)
}

/// Runs a generated Rust crate (in `dir`, package `package`) on each pixel buffer, through a
/// driver crate that depends on it by path (built in release mode).
pub fn run_rust(
    dir: &Path,
    package: &str,
    images: &[Vec<u8>],
    work: &Path,
) -> Result<Vec<Vec<f32>>> {
    let driver = work.join("driver");
    std::fs::create_dir_all(driver.join("src")).map_err(|e| Error::io(&driver, e))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let lib = package.replace('-', "_");
    let manifest = format!(
        "[package]\nname = \"fomo-ad-verify-driver\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{package} = {{ path = {:?} }}\n\n[workspace]\n",
        dir.display().to_string()
    );
    std::fs::write(driver.join("Cargo.toml"), manifest).map_err(|e| Error::io(&driver, e))?;
    let main = format!(
        r#"fn main() {{
    let mut arena = {lib}::Arena::new();
    let mut scores = {lib}::Scores::new();
    for path in std::env::args().skip(1) {{
        let pixels = std::fs::read(&path).expect("the verifier wrote this file");
        {lib}::run(&pixels, &mut arena, &mut scores).expect("valid input");
        let line: Vec<String> = scores.cells.iter().map(|v| format!("{{v:?}}")).collect();
        println!("{{}}", line.join(" "));
    }}
}}
"#
    );
    std::fs::write(driver.join("src/main.rs"), main).map_err(|e| Error::io(&driver, e))?;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&driver)
        .args(["build", "--release", "--quiet", "--offline"])
        .env("CARGO_TARGET_DIR", work.join("target"));
    run_checked(&mut cargo, &dir)?;
    let exe = work.join("target/release/fomo-ad-verify-driver");
    run_driver(&exe, images, work)
}

fn run_checked(command: &mut Command, dir: &Path) -> Result<()> {
    let output = command
        .output()
        .map_err(|e| Error::input(dir, format!("cannot run {:?}: {e}", command.get_program())))?;
    if !output.status.success() {
        let first = crate::codegen::first_error_line(&output.stderr);
        return Err(Error::input(
            dir,
            format!("building the generated code failed: {first}"),
        ));
    }
    Ok(())
}

fn run_driver(exe: &Path, images: &[Vec<u8>], work: &Path) -> Result<Vec<Vec<f32>>> {
    let mut files = vec![];
    for (i, pixels) in images.iter().enumerate() {
        let path = work.join(format!("image{i}.u8"));
        std::fs::write(&path, pixels).map_err(|e| Error::io(&path, e))?;
        files.push(path);
    }
    let output = Command::new(exe)
        .args(&files)
        .output()
        .map_err(|e| Error::io(exe, e))?;
    if !output.status.success() {
        return Err(Error::input(
            exe,
            format!(
                "the generated code failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    parse_score_lines(
        String::from_utf8_lossy(&output.stdout).lines(),
        exe,
        images.len(),
    )
}

/// The prefix of the lines holding cell scores in the log of a run elsewhere (a board, an
/// emulator): `cells: v0 v1 ...`, one line per image; every other line is ignored.
pub const DEVICE_SCORES_PREFIX: &str = "cells:";

/// The cell scores in a device log (see [`DEVICE_SCORES_PREFIX`]), one row per image, checked to
/// be `images` rows; `source` names the log in errors.
pub fn parse_device_scores(log: &str, source: &Path, images: usize) -> Result<Vec<Vec<f32>>> {
    parse_score_lines(
        log.lines()
            .filter_map(|line| line.trim_start().strip_prefix(DEVICE_SCORES_PREFIX)),
        source,
        images,
    )
}

/// Whitespace-separated scores, one line per image, exactly `images` lines.
fn parse_score_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
    source: &Path,
    images: usize,
) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = lines
        .map(|line| {
            line.split_whitespace()
                .map(|v| {
                    v.parse::<f32>()
                        .map_err(|_| Error::input(source, format!("unparsable score `{v}`")))
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    if rows.len() != images {
        return Err(Error::input(
            source,
            format!("printed {} score lines for {images} images", rows.len()),
        ));
    }
    Ok(rows)
}

/// Largest difference between two score grids relative to the largest |reference score|.
pub fn max_relative_error(reference: &[f32], generated: &[f32]) -> f32 {
    let scale = reference
        .iter()
        .fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    reference
        .iter()
        .zip(generated)
        .fold(0.0f32, |m, (r, g)| m.max((r - g).abs() / scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_logs_yield_only_their_cells_lines() {
        let log =
            "boot\nimage 0: score 2.5\n  1.000  2.500*\ncells: 1 2.5\nnoise\ncells: 0.25 -3e-2\n";
        let rows = parse_device_scores(log, Path::new("log"), 2).expect("two cells lines");
        assert_eq!(rows, vec![vec![1.0, 2.5], vec![0.25, -0.03]]);
        let short = parse_device_scores(log, Path::new("log"), 3).unwrap_err();
        assert!(
            short.to_string().contains("2 score lines for 3 images"),
            "{short}"
        );
        let bad = parse_device_scores("cells: 1 x\n", Path::new("log"), 1).unwrap_err();
        assert!(bad.to_string().contains("`x`"), "{bad}");
    }
}
