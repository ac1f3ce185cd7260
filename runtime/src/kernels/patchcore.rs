//! PatchCore: a cell's score is the mean L2 distance from its feature vector to its `k` nearest
//! entries of the memory bank (the coreset kept from training).
//!
//! The search is exact but skips most of the bank: the compiler stores the bank's top principal
//! axes, and the distance to an entry is at least the distance between the two vectors'
//! coordinates on those axes combined with the difference of their norms off them. Only entries
//! whose bound is within reach of the best distance found so far are compared in full.

use super::error::{check_len, Error};
use super::linalg::{dot, squared_distance};
use super::math::{mul_add, sqrt_f64};

/// The most principal axes a bank may carry (the compiler's `PATCHCORE_RANK`).
pub const MAX_RANK: usize = 16;

/// The memory bank and its search constants, all precomputed by the compiler.
#[derive(Clone, Copy, Debug)]
pub struct PatchCore<'a> {
    pub dims: usize,
    /// `[entries][dims]`.
    pub bank: &'a [f32],
    /// `[dims]`: the mean entry.
    pub mean: &'a [f32],
    /// `[rank][dims]`: orthonormal principal axes.
    pub basis: &'a [f32],
    /// `[rank]`: `basis x mean`.
    pub basis_mean: &'a [f32],
    /// `[rank][entries]`: each entry's coordinates on the axes (of `entry - mean`).
    pub projected: &'a [f32],
    /// `[entries]`: the norm of `entry - mean` off the axes.
    pub residuals: &'a [f32],
    /// The largest `||entry - mean||` plus `||mean||`: the scale of the rounding slack.
    pub radius: f32,
}

fn sqrt(x: f32) -> f32 {
    sqrt_f64(f64::from(x)) as f32
}

/// Inserts `d` into `best` (ascending), dropping the largest; returns where, if anywhere.
fn keep_smallest(best: &mut [f32], d: f32) -> Option<usize> {
    let mut j = best.len().checked_sub(1)?;
    if d.partial_cmp(&best[j]) != Some(core::cmp::Ordering::Less) {
        return None;
    }
    while j > 0 && best[j - 1] > d {
        best[j] = best[j - 1];
        j -= 1;
    }
    best[j] = d;
    Some(j)
}

/// Index of the smallest of `x` (0 when empty), tracked in sixteen lanes so the scan vectorises.
fn argmin(x: &[f32]) -> usize {
    let mut least = [f32::INFINITY; 16];
    let mut at = [0usize; 16];
    let blocks = x.chunks_exact(16);
    let rest = blocks.remainder();
    for (b, block) in blocks.enumerate() {
        for (l, &v) in block.iter().enumerate() {
            let closer = v < least[l];
            least[l] = if closer { v } else { least[l] };
            at[l] = if closer { b * 16 + l } else { at[l] };
        }
    }
    let mut best = at[0];
    let mut smallest = least[0];
    for (&v, &i) in least.iter().zip(&at) {
        if v < smallest {
            (best, smallest) = (i, v);
        }
    }
    let tail = x.len() - rest.len();
    for (i, &v) in rest.iter().enumerate() {
        if v < smallest {
            (best, smallest) = (tail + i, v);
        }
    }
    best
}

/// `(sqrt(d) + slack)^2`: the largest bound an entry can have and still be among the nearest.
fn bound_limit(d: f32, slack: f32) -> f32 {
    let r = sqrt(d) + slack;
    r * r
}

/// Scores every cell: `features` is `[cells][dims]`, `scores` is `[cells]`, and `scratch` holds
/// `entries + k` floats, `k` (1 <= k <= entries) being the number of neighbours averaged.
///
/// Per cell, with `c = cell - mean`, `q = basis x cell - basis_mean` (`= basis x c`) and `r` the
/// norm of `c` off the axes, entry
/// `m` is at squared distance at least `||q - projected[.][m]||^2 + gap(r, residuals[m])^2`
/// (`gap` widens `r` by the rounding allowance `1e-5 ||c||^2` on `r^2`). The previous cell's
/// nearest entry and the entries with the smallest bounds (`k` seeds in all) are compared first; then every other entry whose bound is at most
/// `(sqrt(d_k) + slack)^2`, `d_k` the k-th best squared distance so far and
/// `slack = 1e-4 (||c|| + radius)` covering float rounding. Distances are `sum (a - b)^2`; the
/// score is the mean of their square roots, in f64.
pub fn patchcore_scores(
    p: &PatchCore<'_>,
    features: &[f32],
    scratch: &mut [f32],
    scores: &mut [f32],
) -> Result<(), Error> {
    let dims = p.dims;
    let entries = p.residuals.len();
    let k = scratch.len().saturating_sub(entries);
    let rank = p.basis.len().checked_div(dims).unwrap_or(0);
    if dims == 0 || k == 0 || k > entries || rank > MAX_RANK || rank * dims != p.basis.len() {
        return Err(Error::Shape(
            "PatchCore needs dims > 0, at most 16 axes and 1 <= neighbours <= memory bank entries",
        ));
    }
    check_len("bank", p.bank.len(), entries.saturating_mul(dims))?;
    check_len("mean", p.mean.len(), dims)?;
    check_len("basis_mean", p.basis_mean.len(), rank)?;
    check_len("projected", p.projected.len(), rank.saturating_mul(entries))?;
    check_len(
        "features",
        features.len(),
        scores.len().saturating_mul(dims),
    )?;
    let (bound, best) = scratch.split_at_mut(entries);
    // The nearest entry of the cell before (none for the first).
    let mut nearest: Option<usize> = None;
    for (cell, score) in features.chunks_exact(dims).zip(scores.iter_mut()) {
        let mut q = [0.0f32; MAX_RANK];
        let q = &mut q[..rank];
        let norm2 = squared_distance(cell, p.mean);
        for ((qj, axis), &offset) in q
            .iter_mut()
            .zip(p.basis.chunks_exact(dims))
            .zip(p.basis_mean)
        {
            *qj = dot(axis, cell) - offset;
        }
        let inside: f32 = q.iter().map(|x| x * x).sum();
        let r2 = norm2 - inside;
        let allowance = 1e-5 * norm2;
        let r_low = sqrt((r2 - allowance).max(0.0));
        let r_high = sqrt(r2.max(0.0) + allowance);
        let slack = 1e-4 * (sqrt(norm2) + p.radius);
        for (b, &residual) in bound.iter_mut().zip(p.residuals) {
            let gap = (r_low - residual).max(residual - r_high).max(0.0);
            *b = gap * gap;
        }
        // Four axes per pass over the bounds: a quarter of the loads and stores.
        let mut rows = p.projected.chunks_exact(entries);
        for qs in q.chunks_exact(4) {
            let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                (rows.next(), rows.next(), rows.next(), rows.next())
            else {
                break;
            };
            for (b, (((&x0, &x1), &x2), &x3)) in
                bound.iter_mut().zip(r0.iter().zip(r1).zip(r2).zip(r3))
            {
                let (d0, d1, d2, d3) = (qs[0] - x0, qs[1] - x1, qs[2] - x2, qs[3] - x3);
                *b += mul_add(d0, d0, d1 * d1) + mul_add(d2, d2, d3 * d3);
            }
        }
        for (&qj, row) in q[rank - rank % 4..].iter().zip(rows) {
            for (b, &x) in bound.iter_mut().zip(row) {
                let d = qj - x;
                *b = mul_add(d, d, *b);
            }
        }
        best.fill(f32::INFINITY);
        let entry = |m: usize| &p.bank[m * dims..][..dims];
        let mut seeds = k;
        if let Some(previous) = nearest {
            // Neighbouring cells look alike: the previous cell's nearest entry is a good seed.
            keep_smallest(best, squared_distance(cell, entry(previous)));
            bound[previous] = f32::INFINITY;
            seeds -= 1;
        }
        for _ in 0..seeds {
            let seed = argmin(bound);
            bound[seed] = f32::INFINITY;
            if keep_smallest(best, squared_distance(cell, entry(seed))) == Some(0) {
                nearest = Some(seed);
            }
        }
        let mut limit = bound_limit(best[k - 1], slack);
        // A vectorised count skips the blocks of 64 bounds where no entry is within reach.
        for (block, bounds) in bound.chunks(64).enumerate() {
            if bounds.len() == 64 && bounds.iter().filter(|&&b| b <= limit).count() == 0 {
                continue;
            }
            for (i, &b) in bounds.iter().enumerate() {
                if b <= limit {
                    let m = block * 64 + i;
                    if keep_smallest(best, squared_distance(cell, entry(m))) == Some(0) {
                        nearest = Some(m);
                    }
                    limit = bound_limit(best[k - 1], slack);
                }
            }
        }
        let total: f64 = best.iter().map(|&d| sqrt_f64(f64::from(d))).sum();
        *score = (total / k as f64) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bank whose first axis carries the spread, searched with one axis: the pruned search must
    /// find exactly what a full scan finds, for every neighbour count.
    #[test]
    fn pruned_search_matches_a_full_scan() {
        let dims = 3;
        let rows: [[f32; 3]; 6] = [
            [0.0, 0.1, 0.0],
            [1.0, 0.0, 0.2],
            [2.0, -0.1, 0.0],
            [3.0, 0.0, -0.2],
            [4.0, 0.2, 0.1],
            [5.0, 0.0, 0.0],
        ];
        let bank: [f32; 18] = core::array::from_fn(|i| rows[i / 3][i % 3]);
        let mean = [2.5f32, 0.2 / 6.0, 0.1 / 6.0];
        let basis = [1.0f32, 0.0, 0.0];
        let basis_mean = [mean[0]];
        let projected: [f32; 6] = core::array::from_fn(|m| rows[m][0] - mean[0]);
        let residuals: [f32; 6] = core::array::from_fn(|m| {
            sqrt((rows[m][1] - mean[1]).powi(2) + (rows[m][2] - mean[2]).powi(2))
        });
        let p = PatchCore {
            dims,
            bank: &bank,
            mean: &mean,
            basis: &basis,
            basis_mean: &basis_mean,
            projected: &projected,
            residuals: &residuals,
            radius: 3.0,
        };
        let cells = [2.4f32, 0.0, 0.0, -1.0, 3.0, 0.0, 4.9, 0.1, 0.1];
        for k in 1..=6 {
            let mut scratch = [0.0f32; 12];
            let mut scores = [0.0f32; 3];
            patchcore_scores(&p, &cells, &mut scratch[..6 + k], &mut scores).unwrap();
            for (cell, &score) in cells.chunks_exact(dims).zip(&scores) {
                let mut all: [f32; 6] = core::array::from_fn(|m| squared_distance(cell, &rows[m]));
                all.sort_by(f32::total_cmp);
                let expected: f64 = all[..k]
                    .iter()
                    .map(|&d| sqrt_f64(f64::from(d)))
                    .sum::<f64>()
                    / k as f64;
                assert!(
                    (f64::from(score) - expected).abs() <= 1e-6 * expected.max(1.0),
                    "k {k}: {score} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let p = PatchCore {
            dims: 2,
            bank: &[0.0; 4],
            mean: &[0.0; 2],
            basis: &[1.0, 0.0],
            basis_mean: &[0.0],
            projected: &[0.0; 2],
            residuals: &[0.0; 2],
            radius: 0.0,
        };
        let mut scores = [0.0f32; 1];
        // No room for a neighbour after the two bounds.
        assert!(patchcore_scores(&p, &[0.0; 2], &mut [0.0; 2], &mut scores).is_err());
        // Features for two cells, scores for one.
        assert!(patchcore_scores(&p, &[0.0; 4], &mut [0.0; 3], &mut scores).is_err());
    }
}
