//! The little dense linear algebra the GMM fit needs (f64, row-major square matrices), written out
//! so the scorers stay free of BLAS/LAPACK and give bit-identical results on every machine.

/// Lower-triangular Cholesky factor `L` of a symmetric positive definite `d x d` matrix
/// (`a = L L^T`), or `None` if `a` is not positive definite (a non-positive pivot).
pub fn cholesky_lower(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for j in 0..d {
        let row_j = &l[j * d..j * d + j];
        let pivot = a[j * d + j] - row_j.iter().map(|v| v * v).sum::<f64>();
        if pivot.is_nan() || pivot <= 0.0 {
            return None;
        }
        let ljj = pivot.sqrt();
        l[j * d + j] = ljj;
        for i in j + 1..d {
            let dot: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            l[i * d + j] = (a[i * d + j] - dot) / ljj;
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix with a positive diagonal (forward substitution per
/// column); the result is lower-triangular too.
pub fn invert_lower(l: &[f64], d: usize) -> Vec<f64> {
    let mut inv = vec![0.0; d * d];
    for col in 0..d {
        inv[col * d + col] = 1.0 / l[col * d + col];
        for i in col + 1..d {
            let sum: f64 = (col..i).map(|k| l[i * d + k] * inv[k * d + col]).sum();
            inv[i * d + col] = -sum / l[i * d + i];
        }
    }
    inv
}

/// sklearn's `_compute_precision_cholesky` for one full covariance: `solve_triangular(chol(cov),
/// I, lower=True).T`, i.e. the upper-triangular `U` with `precision = U U^T`.
pub fn precision_cholesky(cov: &[f64], d: usize) -> Option<Vec<f64>> {
    let l = cholesky_lower(cov, d)?;
    let inv = invert_lower(&l, d);
    let mut upper = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            upper[j * d + i] = inv[i * d + j];
        }
    }
    Some(upper)
}

/// `log(sum(exp(values)))` without overflow; `-inf` for an empty or all `-inf` input.
pub fn logsumexp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_cholesky_reconstructs_the_inverse_covariance() {
        let cov = [4.0, 2.0, 0.6, 2.0, 3.0, 0.5, 0.6, 0.5, 2.0];
        let u = precision_cholesky(&cov, 3).unwrap();
        // Strictly lower part is zero (sklearn's convention).
        assert_eq!((u[3], u[6], u[7]), (0.0, 0.0, 0.0));
        // cov * (U U^T) = I
        for i in 0..3 {
            for j in 0..3 {
                let mut v = 0.0;
                for k in 0..3 {
                    let prec_kj: f64 = (0..3).map(|m| u[k * 3 + m] * u[j * 3 + m]).sum();
                    v += cov[i * 3 + k] * prec_kj;
                }
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((v - expected).abs() < 1e-12, "({i},{j}) = {v}");
            }
        }
    }

    #[test]
    fn cholesky_rejects_indefinite_matrices() {
        assert!(cholesky_lower(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(cholesky_lower(&[0.0], 1).is_none());
    }

    #[test]
    fn logsumexp_is_stable() {
        assert!((logsumexp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
    }
}
