//! The command line: one file per subcommand; the only place that ties the stages together.

pub mod bench;
pub mod compile;
pub mod inspect;
pub mod model_args;
pub mod score;
pub mod synth;
pub mod test;
pub mod train;
pub mod verify;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};

#[derive(Parser, Debug)]
#[command(
    name = "fomo-ad",
    version,
    about = "Train, test and compile FOMO-AD visual anomaly detection models into standalone C or Rust"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a backbone's layers, parameters, MACs and feature grid, or a trained model.
    Inspect(inspect::InspectArgs),
    /// Write a synthetic inspection data set (MVTec AD layout, with masks) for demos and tests.
    Synth(synth::SynthArgs),
    /// Fit a PatchCore or GMM scorer on the normal images of a data set.
    Train(train::TrainArgs),
    /// Score a labelled test set: F1, AUROC, best threshold, heatmaps.
    Test(test::TestArgs),
    /// Score images: per image the score, the cell grid and the verdict.
    Score(score::ScoreArgs),
    /// Compile a trained model and its backbone into a standalone C library.
    Compile(compile::CompileArgs),
    /// Build generated code, run it on images and compare with the reference executor.
    Verify(verify::VerifyArgs),
    /// Time the generated C and Rust, the reference executor, tract and onnxruntime side by side.
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Train(args) => train::run(args),
        Command::Test(args) => test::run(args),
        Command::Score(args) => score::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Parses `WxH`.
pub fn parse_size(text: &str) -> std::result::Result<(usize, usize), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{text}` is not WIDTHxHEIGHT"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{text}` is not WIDTHxHEIGHT"))
    };
    let (w, h) = (parse(w)?, parse(h)?);
    if w == 0 || h == 0 || w % 8 != 0 || h % 8 != 0 {
        return Err(format!(
            "{w}x{h}: width and height must be positive multiples of 8"
        ));
    }
    let max = crate::frontend::MAX_INPUT_SIDE;
    if w > max || h > max {
        return Err(format!("{w}x{h}: width and height must be at most {max}"));
    }
    Ok((w, h))
}

/// Writes a command's report to stdout; a closed pipe (`| head`) ends the output quietly.
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::usage(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Where the backbone comes from; shared by every subcommand that runs one.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BackboneArgs {
    /// Backbone ONNX file (default: the embedded MobileNetV2 width 1.0 cut at stride 8).
    #[arg(long, value_name = "B.onnx")]
    pub backbone: Option<std::path::PathBuf>,
    /// Input size WxH (default: the graph's own static size, else 96x96).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub input_size: Option<(usize, usize)>,
    /// Node or tensor whose output becomes the feature map (cuts a full backbone).
    #[arg(long, value_name = "NODE")]
    pub cut: Option<String>,
}

impl BackboneArgs {
    pub fn load(&self) -> Result<crate::frontend::Backbone> {
        let options = crate::frontend::BackboneOptions {
            input_size: self.input_size,
            cut: self.cut.clone(),
        };
        let backbone = crate::backbones::load(self.backbone.as_deref(), &options)?;
        let (sy, sx) = backbone.graph.feature_stride();
        if sy != 8.0 || sx != 8.0 {
            eprintln!("warning: {}: the feature stride is {sx}x{sy}, not 8 (FOMO-AD expects a stride-8 cut)", backbone.path.display());
        }
        Ok(backbone)
    }
}
