//! Gaussian mixture log-likelihood with scikit-learn's semantics (`score_samples`), from the
//! precision Cholesky factors, and the cell score derived from it.

use super::error::{check_len, Error};
use super::linalg::dot;
use super::math::LogSumExp;

/// How the precision Cholesky factors `U_k` (scikit-learn's `precisions_cholesky_`,
/// upper-triangular, `precision_k = U_k U_k^T`) are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covariance {
    /// `[components][dims * (dims + 1) / 2]`: per component the rows `j = 0..dims` of `U_k^T`
    /// packed, row `j` holding `U_k[0][j] ..= U_k[j][j]` (`j + 1` values, starting at
    /// `j * (j + 1) / 2`): the only non-zero part of each column of `U_k`.
    Full,
    /// `[components][dims]`: the diagonal of `U_k` (`1 / sigma`).
    Diag,
}

/// A fitted mixture, as the compiler canonicalises it.
#[derive(Clone, Copy, Debug)]
pub struct GaussianMixture<'a> {
    pub dims: usize,
    pub covariance: Covariance,
    /// `[components][dims]`.
    pub means: &'a [f32],
    /// See [`Covariance`].
    pub precision: &'a [f32],
    /// `[components]`: `ln(w_k) - dims / 2 ln(2 pi) + sum_j ln(U_k[j][j])`.
    pub log_constants: &'a [f32],
}

/// How a cell's log-likelihood `ll` becomes its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GmmScore {
    /// `|ll - mean| / std`, with the mean and standard deviation of the training cells'
    /// log-likelihoods (Edge Impulse's score: unusually likely cells also score high).
    Standardized { mean: f32, std: f32 },
    /// `-ll`.
    NegativeLogLikelihood,
}

impl GaussianMixture<'_> {
    fn components(&self) -> usize {
        self.log_constants.len()
    }

    fn factor_len(&self) -> usize {
        match self.covariance {
            Covariance::Full => self.dims.saturating_mul(self.dims.saturating_add(1)) / 2,
            Covariance::Diag => self.dims,
        }
    }

    fn validate(&self, scratch: &[f32]) -> Result<(), Error> {
        let (k, d) = (self.components(), self.dims);
        if k == 0 || d == 0 {
            return Err(Error::Shape("a mixture needs components and dims"));
        }
        check_len("means", self.means.len(), k.saturating_mul(d))?;
        check_len(
            "precision",
            self.precision.len(),
            k.saturating_mul(self.factor_len()),
        )?;
        check_len("scratch", scratch.len(), d)
    }

    /// `ln sum_k exp(log_constants[k] - 0.5 ||(x - mu_k) U_k||^2)`; `scratch` receives
    /// `x - mu_k`. Squared norms in f32, the log-sum-exp in f64.
    fn log_likelihood_unchecked(&self, x: &[f32], scratch: &mut [f32]) -> f64 {
        let d = self.dims;
        let factor_len = self.factor_len();
        let mut total = LogSumExp::new();
        for ((mean, factor), &constant) in self
            .means
            .chunks_exact(d)
            .zip(self.precision.chunks_exact(factor_len))
            .zip(self.log_constants)
        {
            let squared = match self.covariance {
                Covariance::Full => {
                    for ((diff, &xi), &mi) in scratch.iter_mut().zip(x).zip(mean) {
                        *diff = xi - mi;
                    }
                    // y[j] = sum_{i <= j} diff[i] U[i][j]: a dot product with packed row j.
                    let mut squared = 0.0f32;
                    let mut start = 0;
                    for j in 0..d {
                        let y = dot(&scratch[..=j], &factor[start..=start + j]);
                        squared += y * y;
                        start += j + 1;
                    }
                    squared
                }
                Covariance::Diag => x
                    .iter()
                    .zip(mean)
                    .zip(factor)
                    .map(|((&xi, &mi), &u)| {
                        let v = (xi - mi) * u;
                        v * v
                    })
                    .sum::<f32>(),
            };
            total.add(f64::from(constant) - 0.5 * f64::from(squared));
        }
        total.value()
    }
}

/// Log-likelihood of one vector `x` of `dims` values; `scratch` holds `dims` values.
pub fn gmm_log_likelihood(
    g: &GaussianMixture<'_>,
    x: &[f32],
    scratch: &mut [f32],
) -> Result<f64, Error> {
    g.validate(scratch)?;
    check_len("x", x.len(), g.dims)?;
    Ok(g.log_likelihood_unchecked(x, scratch))
}

/// Scores every cell: `features` is `[cells][dims]`, `scores` is `[cells]`, `scratch` holds
/// `dims` values.
pub fn gmm_scores(
    g: &GaussianMixture<'_>,
    score: GmmScore,
    features: &[f32],
    scratch: &mut [f32],
    scores: &mut [f32],
) -> Result<(), Error> {
    g.validate(scratch)?;
    check_len(
        "features",
        features.len(),
        scores.len().saturating_mul(g.dims),
    )?;
    for (x, out) in features.chunks_exact(g.dims).zip(scores.iter_mut()) {
        let ll = g.log_likelihood_unchecked(x, scratch);
        *out = match score {
            GmmScore::Standardized { mean, std } => {
                ((ll - f64::from(mean)) / f64::from(std)).abs() as f32
            }
            GmmScore::NegativeLogLikelihood => (-ll) as f32,
        };
    }
    Ok(())
}
