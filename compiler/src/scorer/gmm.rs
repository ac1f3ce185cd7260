//! Gaussian mixture scorer with scikit-learn's semantics (`GaussianMixture.score_samples`).
//!
//! Scoring, per grid cell:
//! 1. Average pooling `pool_kernel x pool_kernel`, stride `pool_stride`, VALID padding (no
//!    padding; the window is summed in f32 in (ky, kx) order, then divided by `pool_kernel^2`).
//!    The defaults (4, 2) give Edge Impulse's grid side `(W / 8) / 2 - 1`: 12x12 -> 5x5.
//! 2. Optional random projection `projection @ v` (`[dim, channels]`, f64 accumulation rounded to
//!    f32). Edge Impulse projects before pooling; both are linear and VALID pooling has no
//!    padding, so the order does not change the result, and pooling first is cheaper.
//! 3. `loglik = logsumexp_k(log_weights[k] + log N_k(x))` with
//!    `log N_k(x) = -0.5 (dim log 2pi + ||(x - mu_k) U_k||^2) + sum log diag U_k`, `U_k` sklearn's
//!    `precisions_cholesky_[k]` (upper-triangular, `x - mu_k` a row vector; diag: elementwise).
//!    [`Gmm::component_log_constants`] folds `log_weights[k] - 0.5 dim log 2pi + sum log diag U_k`
//!    into one number per component; it is not stored (derived from the tensors on load).
//! 4. Cell score: `Standardized` = `|loglik - mean| / std` with the mean and population standard
//!    deviation of the training cells' log-likelihoods (Edge Impulse's StandardScaler; a likely
//!    cell is as anomalous as an unlikely one), or `Nll` = `-loglik`.

use rayon::prelude::*;

use super::linalg::logsumexp;
use super::random::project;
use super::{
    check_training_features, parse_config, reject_unknown_tensors, take_tensor, Scorer, ScorerKind,
    TensorMap,
};
use crate::ir::{Shape, Tensor};

mod fit;
pub use fit::fit_gmm;

/// Tensor names: `[components, dim]`, `[components, dim, dim]` (full) or `[components, dim]`
/// (diag), `[components]`, `[dim, channels]` (only when projecting).
pub const GMM_MEANS: &str = "means";
pub const GMM_PRECISIONS_CHOLESKY: &str = "precisions_cholesky";
pub const GMM_LOG_WEIGHTS: &str = "log_weights";
pub const GMM_PROJECTION: &str = "projection";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Covariance {
    Full,
    Diag,
}

/// How a cell's log-likelihood becomes its score (with the constants it needs).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum GmmScore {
    Standardized { mean: f64, std: f64 },
    Nll,
}

/// The score mode asked for when fitting (the constants come from the fit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GmmScoreMode {
    Standardized,
    Nll,
}

/// Edge Impulse's "capacity" knob. They do not publish the component counts; ours are
/// Low = 2, Medium = 4, High = 8 (full covariance on 200 images x 25 cells x 192 channels stays
/// within seconds even at High).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capacity {
    Low,
    Medium,
    High,
}

impl Capacity {
    pub fn components(self) -> usize {
        match self {
            Capacity::Low => 2,
            Capacity::Medium => 4,
            Capacity::High => 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gmm {
    pub pool_kernel: usize,
    /// Pooling stride (VALID padding).
    pub pool_stride: usize,
    /// `[dim, channels]` row-major, applied after pooling; `None` = cells used as they are.
    pub projection: Option<Vec<f32>>,
    pub covariance: Covariance,
    pub components: usize,
    /// Dimension the mixture lives in (projected dimension, or the channels without projection).
    pub dim: usize,
    /// `[components, dim]`.
    pub means: Vec<f32>,
    /// sklearn's `precisions_cholesky_`: full `[components, dim, dim]` upper-triangular,
    /// diag `[components, dim]`.
    pub precisions_cholesky: Vec<f32>,
    /// `[components]`, natural log of the mixture weights.
    pub log_weights: Vec<f32>,
    pub score_mode: GmmScore,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GmmOptions {
    pub components: usize,
    pub covariance: Covariance,
    /// Added to the covariance diagonal (sklearn's `reg_covar`).
    pub reg_covar: f64,
    pub max_iter: usize,
    /// EM stops when the mean log-likelihood lower bound changes by less than this (sklearn).
    pub tol: f64,
    /// Gaussian random projection of the pooled cells to this many dimensions.
    pub projection_dim: Option<usize>,
    pub pool_kernel: usize,
    pub pool_stride: usize,
    pub score_mode: GmmScoreMode,
    pub seed: u64,
}

impl Default for GmmOptions {
    fn default() -> Self {
        GmmOptions {
            components: Capacity::Medium.components(),
            covariance: Covariance::Full,
            reg_covar: 1e-6,
            max_iter: 100,
            tol: 1e-3,
            projection_dim: None,
            pool_kernel: 4,
            pool_stride: 2,
            score_mode: GmmScoreMode::Standardized,
            seed: 0,
        }
    }
}

/// The JSON form of a GMM's hyper-parameters (`metadata()` / `from_parts`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    pool_kernel: usize,
    pool_stride: usize,
    /// Feature channels per cell before the projection.
    channels: usize,
    /// Whether a `projection` tensor `[dim, channels]` is applied after pooling.
    projection: bool,
    covariance: Covariance,
    components: usize,
    dim: usize,
    score: GmmScore,
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

impl Gmm {
    /// Channels of the feature map the scorer reads.
    pub fn input_channels(&self) -> usize {
        match &self.projection {
            Some(p) => p.len() / self.dim.max(1),
            None => self.dim,
        }
    }

    /// Step 1 (see the module docs): VALID average pooling; shape `[C, rows, cols]`.
    pub fn pool(&self, features: &Tensor) -> Tensor {
        pool_valid(features, self.pool_kernel, self.pool_stride)
    }

    /// Step 2: the random projection of one pooled cell vector (a copy without projection).
    pub fn project(&self, v: &[f32]) -> Vec<f32> {
        match &self.projection {
            Some(p) => project(p, v),
            None => v.to_vec(),
        }
    }

    /// Per component: `log_weights[k] - 0.5 dim log 2pi + sum log diag U_k`.
    pub fn component_log_constants(&self) -> Vec<f64> {
        let d = self.dim;
        (0..self.components)
            .map(|k| {
                let log_det: f64 = match self.covariance {
                    Covariance::Full => (0..d)
                        .map(|i| (self.precisions_cholesky[(k * d + i) * d + i] as f64).ln())
                        .sum(),
                    Covariance::Diag => self.precisions_cholesky[k * d..(k + 1) * d]
                        .iter()
                        .map(|&v| (v as f64).ln())
                        .sum(),
                };
                self.log_weights[k] as f64 - 0.5 * d as f64 * LN_2PI + log_det
            })
            .collect()
    }

    /// sklearn's `score_samples` for one (pooled, projected) vector of length `dim`.
    pub fn log_likelihood(&self, x: &[f32]) -> f64 {
        self.log_likelihood_with(&self.component_log_constants(), x)
    }

    fn log_likelihood_with(&self, constants: &[f64], x: &[f32]) -> f64 {
        let d = self.dim;
        assert_eq!(
            x.len(),
            d,
            "GMM input has {} values, the mixture {d} dimensions",
            x.len()
        );
        let mut per_component = Vec::with_capacity(self.components);
        let mut diff = vec![0.0f64; d];
        let mut y = vec![0.0f64; d];
        for (k, constant) in constants.iter().enumerate() {
            let mean = &self.means[k * d..(k + 1) * d];
            for ((df, &xv), &m) in diff.iter_mut().zip(x).zip(mean) {
                *df = xv as f64 - m as f64;
            }
            let squared = match self.covariance {
                Covariance::Full => {
                    let u = &self.precisions_cholesky[k * d * d..(k + 1) * d * d];
                    y.fill(0.0);
                    for (i, &di) in diff.iter().enumerate() {
                        for (yj, &uij) in y[i..].iter_mut().zip(&u[i * d + i..(i + 1) * d]) {
                            *yj += di * uij as f64;
                        }
                    }
                    y.iter().map(|v| v * v).sum::<f64>()
                }
                Covariance::Diag => diff
                    .iter()
                    .zip(&self.precisions_cholesky[k * d..(k + 1) * d])
                    .map(|(df, &p)| (df * p as f64).powi(2))
                    .sum(),
            };
            per_component.push(constant - 0.5 * squared);
        }
        logsumexp(&per_component)
    }

    /// Log-likelihood of every cell of a feature map (pool, project, `log_likelihood`).
    pub fn cell_log_likelihoods(&self, features: &Tensor) -> Vec<f64> {
        assert_eq!(
            features.shape.c,
            self.input_channels(),
            "GMM expects {} feature channels, the feature map has {}",
            self.input_channels(),
            features.shape.c
        );
        let pooled = self.pool(features);
        let c = pooled.shape.c;
        let hwc = pooled.to_hwc();
        let constants = self.component_log_constants();
        hwc.par_chunks(c.max(1))
            .map(|cell| self.log_likelihood_with(&constants, &self.project(cell)))
            .collect()
    }

    /// A cell's score from its log-likelihood, by `score_mode`.
    pub fn score_from_log_likelihood(&self, loglik: f64) -> f32 {
        match self.score_mode {
            GmmScore::Standardized { mean, std } => ((loglik - mean) / std).abs() as f32,
            GmmScore::Nll => (-loglik) as f32,
        }
    }

    pub(super) fn from_parts(
        metadata: &serde_json::Value,
        tensors: &TensorMap,
    ) -> Result<Self, String> {
        let config: Config = parse_config(ScorerKind::Gmm, metadata)?;
        let key_err = |key: &str, msg: String| format!("gmm scorer_config: `{key}` {msg}");
        for (key, value) in [
            ("pool_kernel", config.pool_kernel),
            ("pool_stride", config.pool_stride),
            ("channels", config.channels),
            ("components", config.components),
            ("dim", config.dim),
        ] {
            if value == 0 {
                return Err(key_err(key, "must be >= 1".into()));
            }
        }
        if !config.projection && config.channels != config.dim {
            return Err(key_err(
                "channels",
                format!(
                    "({}) must equal `dim` ({}) without a projection",
                    config.channels, config.dim
                ),
            ));
        }
        if let GmmScore::Standardized { mean, std } = config.score {
            if !mean.is_finite() {
                return Err(key_err("score.mean", format!("must be finite, got {mean}")));
            }
            if !(std.is_finite() && std > 0.0) {
                return Err(key_err(
                    "score.std",
                    format!("must be finite and > 0, got {std}"),
                ));
            }
        }
        let (k, d) = (config.components, config.dim);
        let mut known = vec![GMM_MEANS, GMM_PRECISIONS_CHOLESKY, GMM_LOG_WEIGHTS];
        if config.projection {
            known.push(GMM_PROJECTION);
        }
        reject_unknown_tensors(ScorerKind::Gmm, tensors, &known)?;
        let means = take_tensor(tensors, GMM_MEANS, &[k, d])?;
        let precision_shape: Vec<usize> = match config.covariance {
            Covariance::Full => vec![k, d, d],
            Covariance::Diag => vec![k, d],
        };
        let precisions_cholesky = take_tensor(tensors, GMM_PRECISIONS_CHOLESKY, &precision_shape)?;
        let log_weights = take_tensor(tensors, GMM_LOG_WEIGHTS, &[k])?;
        let projection = if config.projection {
            Some(take_tensor(tensors, GMM_PROJECTION, &[d, config.channels])?)
        } else {
            None
        };
        for comp in 0..k {
            for i in 0..d {
                let (diag, lower) = match config.covariance {
                    Covariance::Full => {
                        let row = &precisions_cholesky[(comp * d + i) * d..(comp * d + i + 1) * d];
                        (row[i], row[..i].iter().any(|&v| v != 0.0))
                    }
                    Covariance::Diag => (precisions_cholesky[comp * d + i], false),
                };
                if diag <= 0.0 {
                    return Err(format!(
                        "tensor `{GMM_PRECISIONS_CHOLESKY}`: component {comp} has a non-positive diagonal entry {diag} at {i}"
                    ));
                }
                if lower {
                    return Err(format!(
                        "tensor `{GMM_PRECISIONS_CHOLESKY}`: component {comp} is not upper-triangular (row {i} has entries left of the diagonal; sklearn's precisions_cholesky_ convention)"
                    ));
                }
            }
        }
        let total = logsumexp(&log_weights.iter().map(|&v| v as f64).collect::<Vec<_>>());
        if total.abs() > 1e-3 {
            return Err(format!(
                "tensor `{GMM_LOG_WEIGHTS}`: the weights sum to {} instead of 1",
                total.exp()
            ));
        }
        Ok(Gmm {
            pool_kernel: config.pool_kernel,
            pool_stride: config.pool_stride,
            projection,
            covariance: config.covariance,
            components: k,
            dim: d,
            means,
            precisions_cholesky,
            log_weights,
            score_mode: config.score,
        })
    }
}

impl Scorer for Gmm {
    fn kind(&self) -> ScorerKind {
        ScorerKind::Gmm
    }
    fn channels(&self) -> usize {
        self.input_channels()
    }
    fn grid(&self, features: Shape) -> (usize, usize) {
        (
            valid_len(features.h, self.pool_kernel, self.pool_stride),
            valid_len(features.w, self.pool_kernel, self.pool_stride),
        )
    }
    fn score(&self, features: &Tensor) -> Vec<f32> {
        self.cell_log_likelihoods(features)
            .into_iter()
            .map(|ll| self.score_from_log_likelihood(ll))
            .collect()
    }
    fn metadata(&self) -> serde_json::Value {
        serde_json::to_value(Config {
            pool_kernel: self.pool_kernel,
            pool_stride: self.pool_stride,
            channels: self.input_channels(),
            projection: self.projection.is_some(),
            covariance: self.covariance,
            components: self.components,
            dim: self.dim,
            score: self.score_mode,
        })
        .expect("a plain struct always serialises")
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let (k, d) = (self.components, self.dim);
        let precision_shape = match self.covariance {
            Covariance::Full => vec![k, d, d],
            Covariance::Diag => vec![k, d],
        };
        let mut out = vec![
            (GMM_MEANS.to_string(), vec![k, d], self.means.clone()),
            (
                GMM_PRECISIONS_CHOLESKY.to_string(),
                precision_shape,
                self.precisions_cholesky.clone(),
            ),
            (
                GMM_LOG_WEIGHTS.to_string(),
                vec![k],
                self.log_weights.clone(),
            ),
        ];
        if let Some(p) = &self.projection {
            out.push((
                GMM_PROJECTION.to_string(),
                vec![d, self.input_channels()],
                p.clone(),
            ));
        }
        out
    }
}

/// Output length of a VALID window: 0 when the input is smaller than the window.
fn valid_len(input: usize, kernel: usize, stride: usize) -> usize {
    if input < kernel || stride == 0 {
        0
    } else {
        (input - kernel) / stride + 1
    }
}

/// Average pooling with VALID padding.
fn pool_valid(features: &Tensor, kernel: usize, stride: usize) -> Tensor {
    let Shape { c, h, w } = features.shape;
    let (oh, ow) = (valid_len(h, kernel, stride), valid_len(w, kernel, stride));
    let divisor = (kernel * kernel) as f32;
    let mut out = Tensor::zeros(Shape::new(c, oh, ow));
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0f32;
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        sum += features.at(ch, oy * stride + ky, ox * stride + kx);
                    }
                }
                out.data[(ch * oh + oy) * ow + ox] = sum / divisor;
            }
        }
    }
    out
}

/// Pooled (and projected) training cell vectors, `[n, dim]` row-major, as `score` sees them.
fn training_cells(
    features: &[Tensor],
    kernel: usize,
    stride: usize,
    projection: Option<&[f32]>,
) -> Result<(Vec<f32>, usize), String> {
    let shape = check_training_features(features)?;
    if valid_len(shape.h, kernel, stride) == 0 || valid_len(shape.w, kernel, stride) == 0 {
        return Err(format!(
            "GMM pooling window {kernel}x{kernel} does not fit the {}x{} feature grid",
            shape.h, shape.w
        ));
    }
    let dim = projection.map_or(shape.c, |p| p.len() / shape.c);
    let cells: Vec<f32> = features
        .par_iter()
        .map(|t| {
            let pooled = pool_valid(t, kernel, stride);
            let hwc = pooled.to_hwc();
            match projection {
                None => hwc,
                Some(p) => hwc
                    .chunks_exact(shape.c)
                    .flat_map(|v| project(p, v))
                    .collect(),
            }
        })
        .collect::<Vec<_>>()
        .concat();
    Ok((cells, dim))
}

#[cfg(test)]
mod tests;
