//! `fomo-ad train`: fit a scorer on the normal images of a data set.

use std::path::PathBuf;
use std::time::Instant;

use super::BackboneArgs;
use crate::artifact::{self, BackboneSpec, InputSpec, ModelMeta, TrainingInfo};
use crate::data::{open_dataset, Resize, Scaling};
use crate::error::{Error, Result};
use crate::pipeline::{self, extract_features, feature_graph, image_score, preprocess_for};
use crate::scorer::{
    self, Capacity, Covariance, GmmOptions, GmmScoreMode, PatchCoreOptions, Scorer, ScorerKind,
};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScorerArg {
    Patchcore,
    Gmm,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub backbone: BackboneArgs,
    /// Data set folder (MVTec AD or Edge Impulse layout); only its normal training images are used.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    #[arg(long, value_enum)]
    pub scorer: ScorerArg,
    /// Where to write the model (a safetensors file).
    #[arg(long, value_name = "MODEL.safetensors")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Resize::Squash)]
    pub resize: Resize,
    #[arg(long, value_enum, default_value_t = Scaling::Unit)]
    pub input_scaling: Scaling,
    /// Seed of every random choice (coreset start and projection, k-means++, GMM projection).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// PatchCore: average pooling window over each cell's neighbourhood (1 = none).
    #[arg(long, default_value_t = 3, help_heading = "PatchCore")]
    pub pool_size: usize,
    /// PatchCore: how many feature maps at the grid's stride are concatenated (1 to 3).
    #[arg(long, default_value_t = 1, help_heading = "PatchCore")]
    pub layers: usize,
    /// PatchCore: fraction of training patches kept in the coreset.
    #[arg(long, default_value_t = 0.1, help_heading = "PatchCore")]
    pub sampling_ratio: f64,
    /// PatchCore: a cell's score is the mean distance to this many nearest coreset entries.
    #[arg(long, default_value_t = 1, help_heading = "PatchCore")]
    pub neighbors: usize,

    /// GMM: number of components by capacity (low = 2, medium = 4, high = 8).
    #[arg(long, value_enum, default_value_t = CapacityArg::Medium, help_heading = "GMM")]
    pub capacity: CapacityArg,
    /// GMM: number of components (overrides --capacity).
    #[arg(long, help_heading = "GMM")]
    pub components: Option<usize>,
    #[arg(long, value_enum, default_value_t = CovarianceArg::Full, help_heading = "GMM")]
    pub covariance: CovarianceArg,
    /// GMM: Gaussian random projection of each pooled cell to D dimensions.
    #[arg(long, value_name = "D", help_heading = "GMM")]
    pub projection_dim: Option<usize>,
    /// GMM: added to the covariance diagonal.
    #[arg(long, default_value_t = 1e-6, help_heading = "GMM")]
    pub reg_covar: f64,
    #[arg(long, value_enum, default_value_t = GmmScoreArg::Standardized, help_heading = "GMM")]
    pub gmm_score: GmmScoreArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CapacityArg {
    Low,
    Medium,
    High,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CovarianceArg {
    Full,
    Diag,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GmmScoreArg {
    /// Edge Impulse's abs((loglik - mean_train) / std_train).
    Standardized,
    /// Negative log-likelihood.
    Nll,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    // A bad output path fails now, not after the features are extracted and the scorer fitted.
    crate::atomic::check_file_target(&args.out)?;
    let backbone = args.backbone.load()?;
    let layers = match args.scorer {
        ScorerArg::Patchcore => args.layers,
        ScorerArg::Gmm => 1,
    };
    let features_graph = feature_graph(&backbone, layers)?;
    let pre = preprocess_for(&features_graph.graph, args.resize, args.input_scaling);
    let dataset = open_dataset(&args.data)?;
    let paths: Vec<PathBuf> = dataset.train.iter().map(|s| s.path.clone()).collect();
    let features = extract_features(&features_graph.graph, &pre, &paths, "features")?;
    let extracted = started.elapsed();

    let bar = pipeline::progress_bar(0, "fitting");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let fit_error = |e: String| {
        let name = match args.scorer {
            ScorerArg::Patchcore => "PatchCore",
            ScorerArg::Gmm => "GMM",
        };
        Error::input(&args.data, format!("cannot fit the {name} scorer: {e}"))
    };
    let scorer: Box<dyn Scorer> = match args.scorer {
        ScorerArg::Patchcore => {
            let options = PatchCoreOptions {
                pool_size: args.pool_size,
                neighbors: args.neighbors,
                sampling_ratio: args.sampling_ratio,
                seed: args.seed,
                ..PatchCoreOptions::default()
            };
            Box::new(scorer::fit_patchcore(&features, &options, &progress).map_err(fit_error)?)
        }
        ScorerArg::Gmm => {
            let capacity = match args.capacity {
                CapacityArg::Low => Capacity::Low,
                CapacityArg::Medium => Capacity::Medium,
                CapacityArg::High => Capacity::High,
            };
            let options = GmmOptions {
                components: args.components.unwrap_or(capacity.components()),
                covariance: match args.covariance {
                    CovarianceArg::Full => Covariance::Full,
                    CovarianceArg::Diag => Covariance::Diag,
                },
                reg_covar: args.reg_covar,
                projection_dim: args.projection_dim,
                score_mode: match args.gmm_score {
                    GmmScoreArg::Standardized => GmmScoreMode::Standardized,
                    GmmScoreArg::Nll => GmmScoreMode::Nll,
                },
                seed: args.seed,
                ..GmmOptions::default()
            };
            Box::new(scorer::fit_gmm(&features, &options, &progress).map_err(fit_error)?)
        }
    };
    bar.finish_and_clear();

    let image_scores: Vec<f32> = features
        .iter()
        .map(|f| image_score(&scorer.score(f)))
        .collect();
    let max_image_score = image_scores
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mean_image_score = image_scores.iter().sum::<f32>() / image_scores.len() as f32;
    let feature_shape = features_graph.graph.output_shape();
    let (rows, cols) = scorer.grid(feature_shape);
    let meta = ModelMeta {
        format_version: artifact::FORMAT_VERSION,
        generator: format!("fomo-ad {}", crate::VERSION),
        scorer: scorer.kind(),
        scorer_config: scorer.metadata(),
        input: InputSpec {
            width: pre.width,
            height: pre.height,
            channels: pre.channels,
            scaling: args.input_scaling,
            resize: args.resize,
        },
        feature_grid: [feature_shape.h, feature_shape.w, feature_shape.c],
        grid: [rows, cols],
        backbone: BackboneSpec {
            sha256: backbone.sha256.clone(),
            name: backbone.path.file_name().map_or_else(
                || backbone.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            cut: args.backbone.cut.clone(),
            feature_nodes: features_graph.feature_nodes.clone(),
            layers,
        },
        threshold: max_image_score,
        training: TrainingInfo {
            images: features.len(),
            seed: args.seed,
            mean_image_score,
            max_image_score,
        },
    };
    artifact::save(&args.out, &meta, scorer.as_ref())?;
    let kind = match scorer.kind() {
        ScorerKind::PatchCore => "PatchCore",
        ScorerKind::Gmm => "GMM",
    };
    super::print(&format!(
        "trained {kind} on {} images of {} ({}x{} input, {}x{} cells) in {:.1} s (features {:.1} s)\nsuggested threshold {} (max training image score; mean {})\nwrote {}\n",
        features.len(),
        args.data.display(),
        pre.width,
        pre.height,
        rows,
        cols,
        started.elapsed().as_secs_f64(),
        extracted.as_secs_f64(),
        max_image_score,
        mean_image_score,
        args.out.display()
    ))
}
