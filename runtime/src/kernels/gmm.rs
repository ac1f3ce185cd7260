//! Gaussian mixture log-likelihood in scikit-learn's parametrisation (precision Cholesky
//! factors), and the per-cell score derived from it.

use super::error::{check_len, Error};
use super::math::LogSumExp;

/// `ln(2 pi)`.
const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// How the precision Cholesky factors are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covariance {
    /// `[components][dims][dims]`: `L_k` with `precision_k = L_k L_k^T` (scikit-learn's
    /// `precisions_cholesky_` for `covariance_type='full'`).
    Full,
    /// `[components][dims]`: the diagonal of `L_k` (`1 / sigma`).
    Diag,
}

/// A fitted mixture; the compiler precomputes the log weights and log-determinants.
#[derive(Clone, Copy, Debug)]
pub struct GaussianMixture<'a> {
    pub dims: usize,
    pub covariance: Covariance,
    /// `[components][dims]`.
    pub means: &'a [f32],
    /// See [`Covariance`].
    pub precision_cholesky: &'a [f32],
    /// `[components]`: `ln(weight_k)`.
    pub log_weights: &'a [f32],
    /// `[components]`: `sum(ln(diag(L_k)))`.
    pub log_det_cholesky: &'a [f32],
}

/// What a cell's score is made of its log-likelihood `ll`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GmmScore {
    /// `abs((ll - mean) / std)`, with the mean and standard deviation of the training cells'
    /// log-likelihoods (Edge Impulse's score: unusually likely cells also score high).
    Standardized { mean: f32, std: f32 },
    /// `-ll`.
    NegativeLogLikelihood,
}

impl GaussianMixture<'_> {
    fn components(&self) -> usize {
        self.log_weights.len()
    }

    fn validate(&self) -> Result<(), Error> {
        let (k, d) = (self.components(), self.dims);
        if k == 0 || d == 0 {
            return Err(Error::Shape("a mixture needs components and dims"));
        }
        check_len("means", self.means.len(), k.saturating_mul(d))?;
        let factor = match self.covariance {
            Covariance::Full => d.saturating_mul(d),
            Covariance::Diag => d,
        };
        check_len(
            "precision_cholesky",
            self.precision_cholesky.len(),
            k.saturating_mul(factor),
        )?;
        check_len("log_det_cholesky", self.log_det_cholesky.len(), k)
    }

    /// `sum_k ||(x - mu_k) L_k||^2`'s terms folded by log-sum-exp: the log-likelihood of `x`,
    /// a row vector of `dims` values. `scratch` holds `dims` values (full covariance only).
    fn log_likelihood_unchecked(&self, x: &[f32], scratch: &mut [f32]) -> f32 {
        let d = self.dims;
        let mut total = LogSumExp::new();
        for k in 0..self.components() {
            let mean = &self.means[k * d..][..d];
            let squared = match self.covariance {
                Covariance::Full => {
                    // y = (x - mu) L, accumulated row by row so the inner loop is contiguous.
                    let factor = &self.precision_cholesky[k * d * d..][..d * d];
                    let y = &mut scratch[..d];
                    y.fill(0.0);
                    for ((&xi, &mi), row) in x.iter().zip(mean).zip(factor.chunks_exact(d)) {
                        let diff = xi - mi;
                        for (yj, &l) in y.iter_mut().zip(row) {
                            *yj += diff * l;
                        }
                    }
                    y.iter().map(|&v| v * v).sum::<f32>()
                }
                Covariance::Diag => {
                    let factor = &self.precision_cholesky[k * d..][..d];
                    x.iter()
                        .zip(mean)
                        .zip(factor)
                        .map(|((&xi, &mi), &l)| {
                            let v = (xi - mi) * l;
                            v * v
                        })
                        .sum::<f32>()
                }
            };
            let log_density = -0.5 * (d as f64 * LN_2PI + f64::from(squared))
                + f64::from(self.log_det_cholesky[k]);
            total.add(f64::from(self.log_weights[k]) + log_density);
        }
        total.value() as f32
    }
}

/// Log-likelihood of one feature vector `x` (`dims` values); `scratch` needs `dims` values for
/// a full covariance (any length, even empty, for diag).
pub fn gmm_log_likelihood(
    g: &GaussianMixture<'_>,
    x: &[f32],
    scratch: &mut [f32],
) -> Result<f32, Error> {
    g.validate()?;
    check_len("x", x.len(), g.dims)?;
    check_scratch(g, scratch)?;
    Ok(g.log_likelihood_unchecked(x, scratch))
}

fn check_scratch(g: &GaussianMixture<'_>, scratch: &[f32]) -> Result<(), Error> {
    if g.covariance == Covariance::Full && scratch.len() < g.dims {
        return Err(Error::Length {
            what: "scratch",
            expected: g.dims,
            actual: scratch.len(),
        });
    }
    Ok(())
}

/// Scores every cell: `features` is `[cells][dims]`, `scores` is `[cells]`.
pub fn gmm_scores(
    g: &GaussianMixture<'_>,
    score: GmmScore,
    features: &[f32],
    scratch: &mut [f32],
    scores: &mut [f32],
) -> Result<(), Error> {
    g.validate()?;
    check_scratch(g, scratch)?;
    check_len(
        "features",
        features.len(),
        scores.len().saturating_mul(g.dims),
    )?;
    for (x, out) in features.chunks_exact(g.dims).zip(scores.iter_mut()) {
        let ll = g.log_likelihood_unchecked(x, scratch);
        *out = match score {
            GmmScore::Standardized { mean, std } => ((ll - mean) / std).abs(),
            GmmScore::NegativeLogLikelihood => -ll,
        };
    }
    Ok(())
}
