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
    /// Library name: the prefix of every public symbol (C: lower case, upper case in macros).
    #[arg(long, value_name = "PREFIX")]
    pub name: Option<String>,
    /// Write nothing; exit 0 if DIR already holds exactly this output, else 1 listing the
    /// differing files.
    #[arg(long)]
    pub check: bool,
    /// Write into a non-empty directory fomo-ad did not create, or over edited generated files
    /// (only files fomo-ad generates are replaced).
    #[arg(long, conflicts_with = "check")]
    pub force: bool,
}

/// The files for `program` in `lang`: the one place that dispatches on the language.
pub fn emit(program: &Program, lang: Lang, name: Option<&str>) -> Result<Vec<GeneratedFile>> {
    match lang {
        Lang::C => codegen::c::emit(program, name.unwrap_or(codegen::c::DEFAULT_NAME)),
    }
}

pub fn run(args: CompileArgs) -> Result<()> {
    let loaded = args.model.load()?;
    let program = codegen::program_for_model(
        &loaded.model,
        &loaded.features,
        &loaded.backbone,
        Vec::new(),
    )?;
    let files = emit(&program, args.lang, args.name.as_deref())?;
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
    super::print(&text)
}
