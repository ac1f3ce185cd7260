//! EM fitting of the mixture, following scikit-learn's `GaussianMixture` (init_params="kmeans",
//! n_init=1) step by step, in f64: k-means++ seeding and Lloyd iterations give hard labels, the
//! labels give the initial parameters, then E and M steps until the mean log-likelihood changes by
//! less than `tol`. Parallel loops only ever split work by rows or components and combine results
//! in a fixed order, so the same seed gives bit-identical models.

use rand::Rng;
use rayon::prelude::*;

use super::super::linalg::{logsumexp, precision_cholesky};
use super::super::random::{gaussian_projection, rng};
use super::{training_cells, Covariance, Gmm, GmmOptions, GmmScore, GmmScoreMode};
use crate::ir::Tensor;

const LN_2PI: f64 = super::LN_2PI;
/// Rows per parallel task.
const ROWS: usize = 256;

/// Data matrix `[n, d]` in f64.
struct Data<'a> {
    x: &'a [f64],
    n: usize,
    d: usize,
}

impl Data<'_> {
    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
}

/// Mixture parameters during EM.
struct Params {
    weights: Vec<f64>,
    means: Vec<f64>,
    /// Full: `[k, d, d]` upper-triangular; diag: `[k, d]`.
    precisions_cholesky: Vec<f64>,
}

/// Fits a Gaussian mixture to every pooled (and optionally projected) cell of every training
/// feature map. `progress(done, total)` is called per EM iteration (`total` = `max_iter`).
pub fn fit_gmm(
    features: &[Tensor],
    opts: &GmmOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<Gmm, String> {
    if opts.components == 0 {
        return Err("GMM needs at least 1 component".into());
    }
    if opts.pool_kernel == 0 || opts.pool_stride == 0 {
        return Err("GMM pooling kernel and stride must be >= 1".into());
    }
    if !(opts.reg_covar.is_finite() && opts.reg_covar >= 0.0) {
        return Err(format!(
            "GMM reg_covar must be finite and >= 0, got {}",
            opts.reg_covar
        ));
    }
    if !(opts.tol.is_finite() && opts.tol >= 0.0) {
        return Err(format!("GMM tol must be finite and >= 0, got {}", opts.tol));
    }
    if opts.projection_dim == Some(0) {
        return Err("GMM projection dimension must be >= 1".into());
    }
    let channels = features.first().map_or(0, |t| t.shape.c);
    if let Some(p) = opts.projection_dim.filter(|&p| p > channels) {
        // Projecting up adds no information, and the covariances grow with its square.
        return Err(format!(
            "GMM projection dimension {p} exceeds the {channels} feature channels"
        ));
    }
    let mut seeds = rng(opts.seed);
    let projection_seed: u64 = seeds.random();
    let kmeans_seed: u64 = seeds.random();
    let projection = opts
        .projection_dim
        .map(|p| gaussian_projection(projection_seed, p, channels));
    let (cells, d) = training_cells(
        features,
        opts.pool_kernel,
        opts.pool_stride,
        projection.as_deref(),
    )?;
    let n = cells.len() / d;
    if n < opts.components {
        return Err(format!(
            "GMM with {} components needs at least as many training cells, got {n}",
            opts.components
        ));
    }
    let x: Vec<f64> = cells.iter().map(|&v| v as f64).collect();
    let data = Data { x: &x, n, d };

    let labels = kmeans(&data, opts.components, kmeans_seed);
    let mut resp = vec![0.0; n * opts.components];
    for (i, &l) in labels.iter().enumerate() {
        resp[i * opts.components + l] = 1.0;
    }
    let mut params = m_step(
        &data,
        &resp,
        opts.components,
        opts.covariance,
        opts.reg_covar,
    )?;
    let mut lower_bound = f64::NEG_INFINITY;
    for iter in 1..=opts.max_iter {
        let previous = lower_bound;
        lower_bound = e_step(&data, &params, opts.covariance, &mut resp);
        params = m_step(
            &data,
            &resp,
            opts.components,
            opts.covariance,
            opts.reg_covar,
        )?;
        progress(iter as u64, opts.max_iter as u64);
        if (lower_bound - previous).abs() < opts.tol {
            break;
        }
    }

    let mut gmm = Gmm {
        pool_kernel: opts.pool_kernel,
        pool_stride: opts.pool_stride,
        projection,
        covariance: opts.covariance,
        components: opts.components,
        dim: d,
        means: params.means.iter().map(|&v| v as f32).collect(),
        precisions_cholesky: params
            .precisions_cholesky
            .iter()
            .map(|&v| v as f32)
            .collect(),
        log_weights: params.weights.iter().map(|&w| w.ln() as f32).collect(),
        score_mode: GmmScore::Nll,
    };
    if opts.score_mode == GmmScoreMode::Standardized {
        // Statistics of the stored (f32) model on the training cells: what the device will see.
        let constants = gmm.component_log_constants();
        let logliks: Vec<f64> = cells
            .par_chunks(d)
            .map(|v| gmm.log_likelihood_with(&constants, v))
            .collect();
        let mean = logliks.iter().sum::<f64>() / n as f64;
        let var = logliks.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // StandardScaler keeps a zero variance as scale 1.
        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
        if !(mean.is_finite() && std.is_finite()) {
            return Err(
                "GMM training log-likelihoods are not finite; try a larger reg_covar".into(),
            );
        }
        gmm.score_mode = GmmScore::Standardized { mean, std };
    }
    Ok(gmm)
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Hard labels from k-means++ seeding (sklearn's greedy variant with `2 + ln k` trials per
/// centre) followed by Lloyd iterations until no label changes, the centres move less than
/// sklearn's tolerance (`1e-4` times the mean feature variance), or 300 iterations.
fn kmeans(data: &Data, k: usize, seed: u64) -> Vec<usize> {
    let (n, d) = (data.n, data.d);
    let mut rng = rng(seed);
    let trials = 2 + (k as f64).ln() as usize;
    let first = rng.random_range(0..n);
    let mut centres: Vec<f64> = data.row(first).to_vec();
    let mut closest: Vec<f64> = (0..n)
        .map(|i| squared_distance(data.row(i), data.row(first)))
        .collect();
    for _ in 1..k {
        let potential: f64 = closest.iter().sum();
        let mut cumulative = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &c in &closest {
            acc += c;
            cumulative.push(acc);
        }
        let mut best: Option<(f64, Vec<f64>, usize)> = None;
        for _ in 0..trials {
            let target = rng.random::<f64>() * potential;
            let candidate = cumulative.partition_point(|&c| c < target).min(n - 1);
            let distances: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|i| closest[i].min(squared_distance(data.row(i), data.row(candidate))))
                .collect();
            let pot: f64 = distances.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, distances, candidate));
            }
        }
        let (_, distances, chosen) = best.expect("at least two trials per centre");
        closest = distances;
        centres.extend_from_slice(data.row(chosen));
    }

    let mean_variance = {
        let mut var = 0.0;
        for j in 0..d {
            let mean = (0..n).map(|i| data.x[i * d + j]).sum::<f64>() / n as f64;
            var += (0..n)
                .map(|i| (data.x[i * d + j] - mean).powi(2))
                .sum::<f64>()
                / n as f64;
        }
        var / d as f64
    };
    let shift_tolerance = 1e-4 * mean_variance;
    let mut labels = vec![usize::MAX; n];
    for _ in 0..300 {
        let assigned: Vec<(usize, f64)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut best = (0, f64::INFINITY);
                for c in 0..k {
                    let dist = squared_distance(data.row(i), &centres[c * d..(c + 1) * d]);
                    if dist < best.1 {
                        best = (c, dist);
                    }
                }
                best
            })
            .collect();
        let changed = assigned.iter().zip(&labels).any(|(a, &l)| a.0 != l);
        for (l, a) in labels.iter_mut().zip(&assigned) {
            *l = a.0;
        }
        if !changed {
            break;
        }
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            counts[l] += 1;
            for (s, v) in sums[l * d..(l + 1) * d].iter_mut().zip(data.row(i)) {
                *s += v;
            }
        }
        // An empty cluster takes the point farthest from its centre (sklearn relocates too).
        let mut far: Vec<usize> = (0..n).collect();
        far.sort_by(|&a, &b| assigned[b].1.total_cmp(&assigned[a].1).then(a.cmp(&b)));
        let mut far = far.into_iter();
        let mut shift = 0.0;
        for c in 0..k {
            let new: Vec<f64> = if counts[c] == 0 {
                let p = far.next().expect("k <= n, so a point is left to relocate");
                labels[p] = c;
                data.row(p).to_vec()
            } else {
                sums[c * d..(c + 1) * d]
                    .iter()
                    .map(|s| s / counts[c] as f64)
                    .collect()
            };
            shift += squared_distance(&new, &centres[c * d..(c + 1) * d]);
            centres[c * d..(c + 1) * d].copy_from_slice(&new);
        }
        if shift <= shift_tolerance {
            break;
        }
    }
    labels
}

/// One component's (n_k, mean, precision Cholesky) from the M step.
type ComponentFit = (f64, Vec<f64>, Vec<f64>);

/// sklearn's `_estimate_gaussian_parameters` + `_compute_precision_cholesky`, one component per
/// parallel task. The diagonal variances use the centred form `sum r (x - mu)^2 / n_k` (equal to
/// sklearn's `E[x^2] - mu^2` up to rounding, and more accurate).
fn m_step(
    data: &Data,
    resp: &[f64],
    k: usize,
    covariance: Covariance,
    reg_covar: f64,
) -> Result<Params, String> {
    let (n, d) = (data.n, data.d);
    let per_component: Vec<Result<ComponentFit, String>> = (0..k)
        .into_par_iter()
        .map(|c| {
            let weights: Vec<(usize, f64)> = (0..n)
                .map(|i| (i, resp[i * k + c]))
                .filter(|&(_, r)| r > 0.0)
                .collect();
            let nk = weights.iter().map(|&(_, r)| r).sum::<f64>() + 10.0 * f64::EPSILON;
            let mut mean = vec![0.0; d];
            for &(i, r) in &weights {
                for (m, v) in mean.iter_mut().zip(data.row(i)) {
                    *m += r * v;
                }
            }
            mean.iter_mut().for_each(|m| *m /= nk);
            let precision = match covariance {
                Covariance::Diag => {
                    let mut var = vec![0.0; d];
                    for &(i, r) in &weights {
                        for ((s, v), m) in var.iter_mut().zip(data.row(i)).zip(&mean) {
                            *s += r * (v - m) * (v - m);
                        }
                    }
                    var.iter()
                        .map(|s| {
                            let v = s / nk + reg_covar;
                            if v > 0.0 {
                                Ok(1.0 / v.sqrt())
                            } else {
                                Err(ill_defined(c))
                            }
                        })
                        .collect::<Result<Vec<f64>, String>>()?
                }
                Covariance::Full => {
                    let mut cov = weighted_scatter_upper(data, &weights, &mean);
                    for i in 0..d {
                        for j in i..d {
                            let v = cov[i * d + j] / nk;
                            cov[i * d + j] = v;
                            cov[j * d + i] = v;
                        }
                        cov[i * d + i] += reg_covar;
                    }
                    precision_cholesky(&cov, d).ok_or_else(|| ill_defined(c))?
                }
            };
            Ok((nk, mean, precision))
        })
        .collect();
    let mut params = Params {
        weights: Vec::new(),
        means: Vec::new(),
        precisions_cholesky: Vec::new(),
    };
    for result in per_component {
        let (nk, mean, precision) = result?;
        params.weights.push(nk);
        params.means.extend(mean);
        params.precisions_cholesky.extend(precision);
    }
    let total: f64 = params.weights.iter().sum();
    params.weights.iter_mut().for_each(|w| *w /= total);
    Ok(params)
}

fn ill_defined(component: usize) -> String {
    format!(
        "fitting the GMM failed: component {component} has an ill-defined covariance (singleton or collapsed cells); use fewer components or a larger reg_covar"
    )
}

/// Upper triangle of `sum_i r_i (x_i - mean)(x_i - mean)^T`, eight rows at a time so each pass
/// over the `d x d` accumulator does eight rank-1 updates.
fn weighted_scatter_upper(data: &Data, weights: &[(usize, f64)], mean: &[f64]) -> Vec<f64> {
    const B: usize = 8;
    let d = data.d;
    let mut acc = vec![0.0; d * d];
    let mut diffs = vec![0.0; B * d];
    for block in weights.chunks(B) {
        diffs.fill(0.0);
        let mut scale = [0.0f64; B];
        for (s, &(i, r)) in block.iter().enumerate() {
            scale[s] = r;
            for ((dst, v), m) in diffs[s * d..(s + 1) * d]
                .iter_mut()
                .zip(data.row(i))
                .zip(mean)
            {
                *dst = v - m;
            }
        }
        for i in 0..d {
            let mut a = [0.0f64; B];
            for s in 0..B {
                a[s] = scale[s] * diffs[s * d + i];
            }
            let row = &mut acc[i * d + i..(i + 1) * d];
            for (off, out) in row.iter_mut().enumerate() {
                let j = i + off;
                let mut sum = 0.0;
                for s in 0..B {
                    sum += a[s] * diffs[s * d + j];
                }
                *out += sum;
            }
        }
    }
    acc
}

/// E step: fills `resp` (`[n, k]`) with the responsibilities and returns the mean log-likelihood (sklearn's lower
/// bound).
fn e_step(data: &Data, params: &Params, covariance: Covariance, resp: &mut [f64]) -> f64 {
    let (d, k) = (data.d, params.weights.len());
    let constants: Vec<f64> = (0..k)
        .map(|c| {
            let log_det: f64 = match covariance {
                Covariance::Full => (0..d)
                    .map(|i| params.precisions_cholesky[(c * d + i) * d + i].ln())
                    .sum(),
                Covariance::Diag => params.precisions_cholesky[c * d..(c + 1) * d]
                    .iter()
                    .map(|v| v.ln())
                    .sum(),
            };
            params.weights[c].ln() - 0.5 * d as f64 * LN_2PI + log_det
        })
        .collect();
    let norms: Vec<f64> = resp
        .par_chunks_mut(ROWS * k)
        .enumerate()
        .flat_map_iter(|(chunk, out)| {
            let first = chunk * ROWS;
            let rows = out.len() / k;
            for c in 0..k {
                let mean = &params.means[c * d..(c + 1) * d];
                let squared = match covariance {
                    Covariance::Full => mahalanobis_full(
                        data,
                        first..first + rows,
                        mean,
                        &params.precisions_cholesky[c * d * d..(c + 1) * d * d],
                    ),
                    Covariance::Diag => (first..first + rows)
                        .map(|i| {
                            data.row(i)
                                .iter()
                                .zip(mean)
                                .zip(&params.precisions_cholesky[c * d..(c + 1) * d])
                                .map(|((x, m), p)| ((x - m) * p).powi(2))
                                .sum()
                        })
                        .collect(),
                };
                for (r, sq) in squared.into_iter().enumerate() {
                    out[r * k + c] = constants[c] - 0.5 * sq;
                }
            }
            out.chunks_mut(k)
                .map(|row| {
                    let norm = logsumexp(row);
                    row.iter_mut().for_each(|v| *v -= norm);
                    norm
                })
                .collect::<Vec<_>>()
        })
        .collect();
    // Turn log responsibilities into responsibilities for the M step.
    resp.par_iter_mut().for_each(|v| *v = v.exp());
    norms.iter().sum::<f64>() / data.n as f64
}

/// `||(x_i - mean) U||^2` for the given rows, four rows per pass over the upper-triangular `U`.
fn mahalanobis_full(
    data: &Data,
    rows: std::ops::Range<usize>,
    mean: &[f64],
    u: &[f64],
) -> Vec<f64> {
    const B: usize = 4;
    let d = data.d;
    let mut out = Vec::with_capacity(rows.len());
    let mut diffs = vec![0.0; B * d];
    let mut y = vec![0.0; B * d];
    let rows: Vec<usize> = rows.collect();
    for block in rows.chunks(B) {
        diffs.fill(0.0);
        y.fill(0.0);
        for (s, &i) in block.iter().enumerate() {
            for ((dst, v), m) in diffs[s * d..(s + 1) * d]
                .iter_mut()
                .zip(data.row(i))
                .zip(mean)
            {
                *dst = v - m;
            }
        }
        for i in 0..d {
            let a = [diffs[i], diffs[d + i], diffs[2 * d + i], diffs[3 * d + i]];
            let urow = &u[i * d + i..(i + 1) * d];
            let (y0, rest) = y.split_at_mut(d);
            let (y1, rest) = rest.split_at_mut(d);
            let (y2, y3) = rest.split_at_mut(d);
            for (off, &uij) in urow.iter().enumerate() {
                let j = i + off;
                y0[j] += a[0] * uij;
                y1[j] += a[1] * uij;
                y2[j] += a[2] * uij;
                y3[j] += a[3] * uij;
            }
        }
        for s in 0..block.len() {
            out.push(y[s * d..(s + 1) * d].iter().map(|v| v * v).sum());
        }
    }
    out
}
