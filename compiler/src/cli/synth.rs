//! `fomo-ad synth`: a synthetic inspection data set, so the demo needs no download.

use std::path::PathBuf;
use std::time::Instant;

use crate::data::synth::{self, Surface, SynthOptions, DEFECTS};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Output folder (MVTec AD layout); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Normal training images.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub train: usize,
    /// Normal test images.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub test_good: usize,
    /// Anomalous test images per defect kind (insert, scratch, spot).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub test_anomalous: usize,
    /// Image side in pixels (square RGB images).
    #[arg(long, value_name = "PX", default_value_t = 96)]
    pub size: u32,
    /// Surface texture.
    #[arg(long, value_enum, default_value_t = Surface::Woven)]
    pub surface: Surface,
    /// Replace DIR if an earlier `fomo-ad synth` wrote it.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: SynthArgs) -> Result<()> {
    let options = SynthOptions {
        seed: args.seed,
        train: args.train,
        test_good: args.test_good,
        test_anomalous: args.test_anomalous,
        size: args.size,
        surface: args.surface,
    };
    let start = Instant::now();
    let summary = synth::write_dataset(&options, &args.out, args.force)?;
    let defects: Vec<&str> = DEFECTS.iter().map(|d| d.name()).collect();
    super::print(&format!(
        "wrote {} images ({} train, {} test good, {} per defect: {}) and {} masks to {} in {:.2} s\n",
        summary.images,
        options.train,
        options.test_good,
        options.test_anomalous,
        defects.join(", "),
        summary.masks,
        args.out.display(),
        start.elapsed().as_secs_f64()
    ))
}
