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

/// `||q - x||^2` over four axes.
#[inline(always)]
fn axes_distance(q: &[f32; 4], x: [f32; 4]) -> f32 {
    let d = [q[0] - x[0], q[1] - x[1], q[2] - x[2], q[3] - x[3]];
    mul_add(d[0], d[0], d[1] * d[1]) + mul_add(d[2], d[2], d[3] * d[3])
}

/// Cells whose bounds one pass computes (the compiler's `PATCHCORE_GROUP`): each projected value
/// is loaded once per group instead of once per cell.
pub const GROUP: usize = 4;

/// One cell's projection: `q`, and what widens the bound and the limit for rounding.
struct Projection {
    q: [f32; MAX_RANK],
    r_low: f32,
    r_high: f32,
    slack: f32,
}

fn project_cell(p: &PatchCore<'_>, cell: &[f32], rank: usize) -> Projection {
    let mut q = [0.0f32; MAX_RANK];
    let norm2 = squared_distance(cell, p.mean);
    for ((qj, axis), &offset) in q[..rank]
        .iter_mut()
        .zip(p.basis.chunks_exact(p.dims))
        .zip(p.basis_mean)
    {
        *qj = dot(axis, cell) - offset;
    }
    let inside = q.iter().fold(0.0f32, |sum, &x| mul_add(x, x, sum));
    let r2 = norm2 - inside;
    let allowance = 1e-5 * norm2;
    Projection {
        q,
        r_low: sqrt((r2 - allowance).max(0.0)),
        r_high: sqrt(r2.max(0.0) + allowance),
        slack: 1e-4 * (sqrt(norm2) + p.radius),
    }
}

/// Scores every cell: `features` is `[cells][dims]`, `scores` is `[cells]`, and `scratch` holds
/// `GROUP * entries + k` floats, `k` (1 <= k <= entries) being the number of neighbours averaged.
///
/// Per cell, with `c = cell - mean`, `q = basis x cell - basis_mean` (`= basis x c`) and `r` the
/// norm of `c` off the axes, entry `m` is at squared distance at least
/// `||q - projected[.][m]||^2 + gap(r, residuals[m])^2` (`gap` widens `r` by the rounding
/// allowance `1e-5 ||c||^2` on `r^2`); these bounds are computed for [`GROUP`] cells at a time.
/// Then, cell by cell, the previous cell's nearest entry and the entries with the smallest
/// bounds (`k` seeds in all) are compared first; then every other entry whose bound is at most
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
    let k = scratch.len().saturating_sub(GROUP * entries);
    let rank = p.basis.len().checked_div(dims).unwrap_or(0);
    if dims == 0 || k == 0 || k > entries || rank > MAX_RANK || rank * dims != p.basis.len() {
        return Err(Error::Shape(
            "PatchCore needs dims > 0, at most 16 axes, 1 <= neighbours <= memory bank entries and 4 bound rows of scratch",
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
    let (bounds, best) = scratch.split_at_mut(GROUP * entries);
    let entry = |m: usize| &p.bank[m * dims..][..dims];
    // The nearest entry of the cell before (none for the first).
    let mut nearest: Option<usize> = None;
    for (cells, scores) in features.chunks(GROUP * dims).zip(scores.chunks_mut(GROUP)) {
        // A short last group repeats its last cell (computed, never searched).
        let cell = |g: usize| {
            let at = g.min(cells.len() / dims - 1) * dims;
            &cells[at..][..dims]
        };
        let projections: [Projection; GROUP] =
            core::array::from_fn(|g| project_cell(p, cell(g), rank));
        for (bound, cell) in bounds.chunks_exact_mut(entries).zip(&projections) {
            for (b, &residual) in bound.iter_mut().zip(p.residuals) {
                let gap = (cell.r_low - residual).max(residual - cell.r_high).max(0.0);
                *b = gap * gap;
            }
        }
        let [b0, b1, b2, b3] = split_rows(bounds, entries);
        let q =
            |g: usize, j: usize| -> [f32; 4] { core::array::from_fn(|a| projections[g].q[j + a]) };
        // Four axes x four cells per pass: each projected value and each bound is loaded once
        // for sixteen multiply-adds.
        let mut rows = p.projected.chunks_exact(entries);
        for j in (0..rank - rank % 4).step_by(4) {
            let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                (rows.next(), rows.next(), rows.next(), rows.next())
            else {
                break;
            };
            let (q0, q1, q2, q3) = (q(0, j), q(1, j), q(2, j), q(3, j));
            let projected = r0.iter().zip(r1).zip(r2).zip(r3);
            let bounds = b0
                .iter_mut()
                .zip(b1.iter_mut())
                .zip(b2.iter_mut().zip(b3.iter_mut()));
            for ((((&x0, &x1), &x2), &x3), ((c0, c1), (c2, c3))) in projected.zip(bounds) {
                let x = [x0, x1, x2, x3];
                *c0 += axes_distance(&q0, x);
                *c1 += axes_distance(&q1, x);
                *c2 += axes_distance(&q2, x);
                *c3 += axes_distance(&q3, x);
            }
        }
        for (j, row) in (rank - rank % 4..rank).zip(rows) {
            for (g, bound) in [&mut *b0, &mut *b1, &mut *b2, &mut *b3]
                .into_iter()
                .enumerate()
            {
                let qj = projections[g].q[j];
                for (b, &x) in bound.iter_mut().zip(row) {
                    let d = qj - x;
                    *b = mul_add(d, d, *b);
                }
            }
        }
        for (g, (score, bound)) in scores
            .iter_mut()
            .zip(bounds.chunks_exact_mut(entries))
            .enumerate()
        {
            let cell = cell(g);
            let slack = projections[g].slack;
            best.fill(f32::INFINITY);
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
    }
    Ok(())
}

/// The four bound rows of `bounds` (`GROUP * entries` long).
fn split_rows(bounds: &mut [f32], entries: usize) -> [&mut [f32]; GROUP] {
    let (b0, rest) = bounds.split_at_mut(entries);
    let (b1, rest) = rest.split_at_mut(entries);
    let (b2, b3) = rest.split_at_mut(entries);
    [b0, b1, b2, b3]
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
            let mut scratch = [0.0f32; GROUP * 6 + 6];
            let mut scores = [0.0f32; 3];
            patchcore_scores(&p, &cells, &mut scratch[..GROUP * 6 + k], &mut scores).unwrap();
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
