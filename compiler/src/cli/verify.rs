//! `fomo-ad verify`: build generated code, run it on images and compare its cell scores with the
//! reference executor. Exit 0 only when every image agrees within the tolerance.

use std::path::PathBuf;

use super::model_args::ModelArgs;
use crate::codegen::harness;
use crate::data::open_dataset;
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
    #[arg(long, value_enum)]
    pub lang: VerifyLang,
    /// Directory `fomo-ad compile` wrote.
    #[arg(long, value_name = "DIR")]
    pub generated: PathBuf,
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
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let generated = match args.lang {
        VerifyLang::C => harness::run_c(
            &args.generated,
            args.name.as_deref().unwrap_or("fomo_ad"),
            &pixels,
            work.path(),
        )?,
        VerifyLang::Rust => harness::run_rust(
            &args.generated,
            args.name.as_deref().unwrap_or("fomo-ad-model"),
            &pixels,
            work.path(),
        )?,
    };
    let threshold = loaded.model.meta.threshold;
    let mut worst = 0.0f32;
    let mut verdicts_agree = 0;
    for (r, g) in reference.iter().zip(&generated) {
        if g.len() != r.len() {
            return Err(Error::input(
                &args.generated,
                format!("printed {} cells, the model has {}", g.len(), r.len()),
            ));
        }
        worst = worst.max(harness::max_relative_error(r, g));
        verdicts_agree +=
            usize::from((image_score(r) >= threshold) == (image_score(g) >= threshold));
    }
    let lang = match args.lang {
        VerifyLang::C => "C",
        VerifyLang::Rust => "Rust",
    };
    super::print(&format!(
        "generated {lang} vs reference on {} images: max relative error {worst:.2e} (tolerance {:.0e}), verdicts agree on {verdicts_agree}/{}\n",
        picked.len(),
        args.tolerance,
        picked.len()
    ))?;
    if worst > args.tolerance || verdicts_agree != picked.len() {
        return Err(Error::input(
            &args.generated,
            format!("disagrees with the reference: max relative error {worst:.2e}"),
        ));
    }
    Ok(())
}
