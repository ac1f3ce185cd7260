//! `fomo-ad compile`: a trained model (and its backbone) into a standalone library.

use std::path::PathBuf;

use super::model_args::ModelArgs;
use crate::codegen::{self, output, GeneratedFile, Program};
use crate::error::Result;

/// Target languages. Each maps to one emitter in [`emit`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// C99 library: NAME.h, NAME.c, NAME_weights.c, kernels, CMakeLists.txt, README.md.
    C,
    /// `no_std` Rust crate: Cargo.toml, src/lib.rs, src/weights.rs, README.md.
    Rust,
}

#[derive(clap::Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Language of the generated library.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Output directory (created; an existing one must hold a previous output or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Library name: the prefix of every public symbol (C: lower case, upper case in macros), or
    /// the Rust package name (default fomo-ad-model).
    #[arg(long, value_name = "PREFIX")]
    pub name: Option<String>,
    /// Rust: copy the kernels into the crate (src/kernels/) instead of depending on
    /// fomo-ad-runtime.
    #[arg(long, conflicts_with = "runtime_path")]
    pub standalone: bool,
    /// Rust: depend on fomo-ad-runtime at this path (written into Cargo.toml as given, relative
    /// to the generated crate) instead of the registry version.
    #[arg(long, value_name = "PATH")]
    pub runtime_path: Option<String>,
    /// Write nothing; exit 0 if DIR already holds exactly this output, else 1 listing the
    /// differing files.
    #[arg(long)]
    pub check: bool,
    /// Write into a non-empty directory fomo-ad did not create, or over edited generated files
    /// (only files fomo-ad generates are replaced).
    #[arg(long, conflicts_with = "check")]
    pub force: bool,
    /// C: also compile the library for this microcontroller with the GNU Arm toolchain
    /// (arm-none-eabi-gcc on PATH) and add its footprint to README.md: flash for code and
    /// constants, RAM for the arena, the stack of NAME_run. The C itself is the same.
    #[arg(long, value_enum, value_name = "CORE")]
    pub target: Option<codegen::cross::Target>,
}

/// The files for `program` in `lang`: the one place that dispatches on the language.
/// `runtime` only matters to Rust.
pub fn emit(
    program: &Program,
    lang: Lang,
    name: Option<&str>,
    runtime: codegen::rust::Runtime,
) -> Result<Vec<GeneratedFile>> {
    match lang {
        Lang::C => codegen::c::emit(program, name.unwrap_or(codegen::c::DEFAULT_NAME)),
        Lang::Rust => codegen::rust::emit(
            program,
            &codegen::rust::RustOptions {
                crate_name: name
                    .unwrap_or(codegen::rust::RustOptions::DEFAULT_NAME)
                    .to_string(),
                runtime,
            },
        ),
    }
}

pub fn run(args: CompileArgs) -> Result<()> {
    let runtime = match (&args.runtime_path, args.standalone) {
        (Some(path), _) => codegen::rust::Runtime::Path(path.clone()),
        (None, true) => codegen::rust::Runtime::Standalone,
        (None, false) => codegen::rust::Runtime::Version,
    };
    if args.lang != Lang::Rust && runtime != codegen::rust::Runtime::Version {
        return Err(crate::Error::usage(
            "--standalone and --runtime-path apply to --lang rust only",
        ));
    }
    if args.lang != Lang::C && args.target.is_some() {
        return Err(crate::Error::usage("--target applies to --lang c only"));
    }
    if args.lang == Lang::Rust && !codegen::rust::rustfmt_available() {
        eprintln!("warning: rustfmt was not found: the generated src/lib.rs is formatted by prettyplease alone and may not pass `cargo fmt --check`");
    }
    // Arguments first: a bad name or output path must not wait for the model to load.
    match args.lang {
        Lang::C => {
            codegen::c::validate_name(args.name.as_deref().unwrap_or(codegen::c::DEFAULT_NAME))?
        }
        Lang::Rust => codegen::rust::check_crate_name(
            args.name
                .as_deref()
                .unwrap_or(codegen::rust::RustOptions::DEFAULT_NAME),
        )?,
    }
    if args.out.exists() && !args.out.is_dir() {
        return Err(crate::Error::input(
            &args.out,
            "exists and is not a directory",
        ));
    }
    let loaded = args.model.load()?;
    let program = codegen::program_for_model(
        &loaded.model,
        &loaded.features,
        &loaded.backbone,
        Vec::new(),
    )?;
    let mut files = emit(&program, args.lang, args.name.as_deref(), runtime)?;
    let footprint = match args.target {
        Some(target) => {
            let name = args.name.as_deref().unwrap_or(codegen::c::DEFAULT_NAME);
            let footprint = codegen::cross::measure(&files, name, target)?;
            files = codegen::c::emit_with_footprint(&program, name, Some(&footprint))?;
            Some(footprint)
        }
        None => None,
    };
    let dir = &args.out;
    if args.check {
        let differing = output::check(dir, &files)?;
        if differing.is_empty() {
            return super::print(&format!("{}: up to date\n", dir.display()));
        }
        let mut text = format!(
            "{}: {} file(s) differ from what `fomo-ad compile` generates:\n",
            dir.display(),
            differing.len()
        );
        for path in &differing {
            text += &format!("  {path}\n");
        }
        super::print(&text)?;
        std::process::exit(1);
    }
    let report = output::write(dir, &files, args.force)?;
    let mut text = format!(
        "{}: {} file(s) written, {} unchanged{}\n",
        dir.display(),
        report.written.len(),
        report.unchanged.len(),
        if report.removed.is_empty() {
            String::new()
        } else {
            format!(", removed {}", report.removed.join(", "))
        }
    );
    text += &format!(
        "arena {} bytes (lower bound {} bytes), constants {} bytes, backbone {} MACs, grid {}x{}, threshold {}\n",
        program.arena.bytes,
        program.arena.lower_bound_bytes,
        program.constant_bytes(),
        program.backbone_macs(),
        program.grid.cols,
        program.grid.rows,
        program.threshold
    );
    if let Some(f) = &footprint {
        text += &format!(
            "{} footprint: flash code {} bytes, flash constants {} bytes, RAM arena {} bytes, stack {} bytes{}\n",
            f.target.name(),
            f.code_bytes,
            f.constant_bytes,
            f.arena_bytes,
            f.stack_bytes,
            if f.external_calls.is_empty() {
                String::new()
            } else {
                format!(" (plus the C library's {})", f.external_calls.join(", "))
            }
        );
    }
    super::print(&text)
}
