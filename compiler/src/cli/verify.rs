//! `fomo-ad verify`: build generated code, run it on images and compare its cell scores with the
//! reference executor. Exit 0 only when every image agrees within the tolerance. For code that
//! runs elsewhere (a board, an emulator), `--export-inputs` writes the picked images as raw bytes
//! and `--device-scores` compares the scores that run printed.

use std::path::{Path, PathBuf};

use super::model_args::ModelArgs;
use crate::codegen::harness;
use crate::data::{open_dataset, Sample};
use crate::error::{Error, Result};
use crate::pipeline::image_score;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum VerifyLang {
    C,
    Rust,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Language of the generated code to build and run on this machine.
    #[arg(long, value_enum, required_unless_present_any = ["export_inputs", "device_scores"])]
    pub lang: Option<VerifyLang>,
    /// Directory `fomo-ad compile` wrote.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["export_inputs", "device_scores"])]
    pub generated: Option<PathBuf>,
    /// C symbol prefix or Rust package name given to `compile --name` (default: compile's).
    #[arg(long)]
    pub name: Option<String>,
    /// Data set whose test images (else training images) are run.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// How many images to run.
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    /// Largest accepted error relative to the largest |reference score| of an image.
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f32,
    /// Write the picked images to DIR as raw interleaved bytes at the model's input size
    /// (image0.u8, image1.u8, ...; what `NAME_run` takes) and exit, for a run elsewhere.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["lang", "generated", "device_scores"])]
    pub export_inputs: Option<PathBuf>,
    /// Compare the scores a run elsewhere printed for the exported images instead of building the
    /// code: FILE holds one line `cells: v0 v1 ...` per image, in order (other lines are ignored).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["lang", "generated"])]
    pub device_scores: Option<PathBuf>,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let loaded = args.model.load()?;
    let dataset = open_dataset(&args.data)?;
    let samples = if dataset.test.is_empty() {
        &dataset.train
    } else {
        &dataset.test
    };
    // Spread the picks over the whole list so every label and defect type is likely covered.
    let step = (samples.len() / args.images.max(1)).max(1);
    let picked: Vec<_> = samples.iter().step_by(step).take(args.images).collect();
    let mut pixels = vec![];
    let mut reference = vec![];
    for sample in &picked {
        let (p, cells) = crate::pipeline::score_image(
            &loaded.features.graph,
            &loaded.preprocess,
            loaded.model.scorer.as_ref(),
            &sample.path,
        )?;
        pixels.push(p);
        reference.push(cells);
    }
    if let Some(dir) = &args.export_inputs {
        return export_inputs(dir, &picked, &pixels);
    }
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let (generated, what, source) = match (&args.device_scores, args.lang, &args.generated) {
        (Some(log), _, _) => {
            let text = std::fs::read_to_string(log).map_err(|e| Error::io(log, e))?;
            let rows = harness::parse_device_scores(&text, log, pixels.len())?;
            (rows, "device run", log)
        }
        (None, Some(VerifyLang::C), Some(dir)) => {
            let name = args.name.as_deref().unwrap_or("fomo_ad");
            (
                harness::run_c(dir, name, &pixels, work.path())?,
                "generated C",
                dir,
            )
        }
        (None, Some(VerifyLang::Rust), Some(dir)) => {
            let name = args.name.as_deref().unwrap_or("fomo-ad-model");
            (
                harness::run_rust(dir, name, &pixels, work.path())?,
                "generated Rust",
                dir,
            )
        }
        _ => {
            return Err(Error::usage(
                "verify needs --lang and --generated, --device-scores or --export-inputs",
            ))
        }
    };
    let threshold = loaded.model.meta.threshold;
    let mut worst = 0.0f32;
    let mut verdicts_agree = 0;
    for (r, g) in reference.iter().zip(&generated) {
        if g.len() != r.len() {
            return Err(Error::input(
                source,
                format!("printed {} cells, the model has {}", g.len(), r.len()),
            ));
        }
        worst = worst.max(harness::max_relative_error(r, g));
        verdicts_agree +=
            usize::from((image_score(r) >= threshold) == (image_score(g) >= threshold));
    }
    super::print(&format!(
        "{what} vs reference on {} images: max relative error {worst:.2e} (tolerance {:.0e}), verdicts agree on {verdicts_agree}/{}\n",
        picked.len(),
        args.tolerance,
        picked.len()
    ))?;
    if worst > args.tolerance || verdicts_agree != picked.len() {
        return Err(Error::input(
            source,
            format!("disagrees with the reference: max relative error {worst:.2e}"),
        ));
    }
    Ok(())
}

/// Writes each picked image's pixels as `DIR/imageN.u8` and lists where each came from.
fn export_inputs(dir: &Path, picked: &[&Sample], pixels: &[Vec<u8>]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut text = String::new();
    for (i, (sample, bytes)) in picked.iter().zip(pixels).enumerate() {
        let path = dir.join(format!("image{i}.u8"));
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        text += &format!("{}: {}\n", path.display(), sample.path.display());
    }
    super::print(&text)
}
