//! The Rust emitter: prints a [`Program`] as a `no_std`, `forbid(unsafe_code)`, heap-free crate.
//!
//! Files: `Cargo.toml`, `src/lib.rs` (graph and scorer as straight-line calls into the
//! `fomo-ad-runtime` kernels, built with `quote!` and formatted by prettyplease), `src/weights.rs`
//! (every constant, exact literals), `README.md` (model summary and footprint). With
//! [`Runtime::Standalone`] the crate has no dependency: the runtime's `src/kernels/` directory is
//! copied in as `src/kernels/` (compiled into this binary with `include_str!`, so the runtime
//! crate stays the single source of truth). Nothing here computes: every number comes from the
//! [`Program`].

mod lib_rs;
mod manifest;
mod standalone;
mod weights_rs;

use super::program::Program;
use super::GeneratedFile;
use crate::error::{Error, Result};

/// Alignment in bytes of every weight static the crate declares: the runtime's `kernels::Aligned`
/// (a cache line, so that vector loads of weight rows never straddle two).
pub const WEIGHT_ALIGNMENT: usize = 64;

/// Bytes the crate's weight statics occupy: each array rounded up to [`WEIGHT_ALIGNMENT`].
pub fn weight_bytes(program: &Program) -> usize {
    program
        .constants
        .iter()
        .map(|c| (c.values.len() * 4).next_multiple_of(WEIGHT_ALIGNMENT))
        .sum()
}

/// Where the generated crate gets its kernels from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `fomo-ad-runtime = "MAJOR.MINOR"` from a registry.
    Version,
    /// `fomo-ad-runtime = { path = ... }`, the path written as given.
    Path(String),
    /// No dependency: the kernels are copied into `src/kernels/`.
    Standalone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RustOptions {
    /// Cargo package name (also the library's name, with `-` as `_`).
    pub crate_name: String,
    pub runtime: Runtime,
}

impl RustOptions {
    pub const DEFAULT_NAME: &'static str = "fomo-ad-model";
}

/// The runtime version a generated crate depends on (the runtime shares the workspace version).
pub fn runtime_version() -> String {
    let mut parts = crate::VERSION.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("1");
    format!("{major}.{minor}")
}

/// Checks that `name` can be a Cargo package and library name: ASCII letters, digits, `_` and
/// `-`, starting with a letter, at most 64 characters, and not a Rust keyword (as a library
/// name) nor `test`, `core`, `std` or `alloc`, which would shadow a built-in crate.
pub fn check_crate_name(name: &str) -> Result<()> {
    const RESERVED: &[&str] = &[
        "as",
        "break",
        "const",
        "continue",
        "crate",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
        "async",
        "await",
        "dyn",
        "abstract",
        "become",
        "box",
        "do",
        "final",
        "macro",
        "override",
        "priv",
        "typeof",
        "unsized",
        "virtual",
        "yield",
        "try",
        "gen",
        "test",
        "core",
        "std",
        "alloc",
        "proc_macro",
        "kernels",
        "fomo_ad_runtime",
    ];
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !valid_chars || !starts_with_letter || name.len() > 64 {
        return Err(Error::usage(format!(
            "--name `{}`: a crate name is 1 to 64 ASCII letters, digits, `_` or `-`, starting with a letter",
            super::sanitize_comment(name)
        )));
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return Err(Error::usage(format!(
            "--name `{name}` is a Rust keyword or the name of a crate it would shadow"
        )));
    }
    Ok(())
}

/// Prints the whole crate. The same program and options always give byte-identical files.
pub fn emit(program: &Program, options: &RustOptions) -> Result<Vec<GeneratedFile>> {
    check_crate_name(&options.crate_name)?;
    let header = Header::new(program, options);
    let mut files = vec![
        GeneratedFile {
            path: "Cargo.toml".into(),
            contents: manifest::cargo_toml(options, &header),
        },
        GeneratedFile {
            path: "README.md".into(),
            contents: manifest::readme(program, options, &header),
        },
        GeneratedFile {
            path: "src/lib.rs".into(),
            contents: lib_rs::lib_rs(program, options, &header)?,
        },
        GeneratedFile {
            path: "src/weights.rs".into(),
            contents: weights_rs::weights_rs(program, &header),
        },
    ];
    if options.runtime == Runtime::Standalone {
        files.extend(standalone::kernel_files(&header));
    }
    Ok(files)
}

/// The provenance every file starts with, as plain lines (each file adds its comment marker).
struct Header {
    lines: Vec<String>,
}

impl Header {
    fn new(program: &Program, options: &RustOptions) -> Header {
        let runtime = match &options.runtime {
            Runtime::Version => format!("fomo-ad-runtime-{}", runtime_version()),
            Runtime::Path(path) => format!("path:{path}"),
            Runtime::Standalone => "standalone".into(),
        };
        Header {
            lines: super::header_lines(
                program,
                &[
                    ("lang", "rust".into()),
                    ("name", options.crate_name.clone()),
                    ("runtime", runtime),
                ],
            ),
        }
    }

    /// The header as comment lines starting with `marker` (`//`, `#`).
    fn commented(&self, marker: &str) -> String {
        self.lines
            .iter()
            .map(|line| format!("{marker} {line}\n"))
            .collect()
    }
}

/// `code` formatted by `rustfmt` (edition 2021, default options), or `None` when no `rustfmt` runs.
///
/// prettyplease formats close to rustfmt but breaks lines at 89 columns where rustfmt uses 100,
/// and lays out some lists differently; the generated crate must pass `cargo fmt --check`, so
/// its hand-off to rustfmt makes that hold for every model. Without rustfmt the prettyplease
/// output is used as it is (valid, readable, possibly not rustfmt-clean; `compile` warns).
pub fn rustfmt(code: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // rustfmt reads `rustfmt.toml` from its working directory upwards: run it in an empty one.
    let dir = tempfile::tempdir().ok()?;
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(code.as_bytes()).ok()?;
    let output = child.wait_with_output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}

/// Whether [`rustfmt`] can run here.
pub fn rustfmt_available() -> bool {
    rustfmt("fn main() {}\n").is_some()
}

/// A Rust `f32` literal that reads back as exactly `v` (Rust's shortest round-trip form, always
/// with a `.` or an exponent so it is a float literal). The program holds only finite values.
fn float_literal(v: f32) -> String {
    debug_assert!(v.is_finite(), "programs hold finite constants only");
    format!("{v:?}")
}

/// `UPPER_SNAKE` name of a program constant in `weights.rs`.
fn static_name(constant_name: &str) -> String {
    constant_name.to_ascii_uppercase()
}
