//! PatchCore: a cell's score is the mean L2 distance from its feature vector to its `k` nearest
//! entries of the coreset (the memory bank kept from training).

use super::error::{check_len, Error};
use super::math::sqrt;

/// The memory bank: `entries` feature vectors of `dims` values and their squared norms,
/// precomputed by the compiler.
#[derive(Clone, Copy, Debug)]
pub struct PatchCore<'a> {
    pub dims: usize,
    /// `[entries][dims]`.
    pub coreset: &'a [f32],
    /// `[entries]`: `||b||^2` of each entry.
    pub coreset_sq_norms: &'a [f32],
}

/// Dot product with eight independent accumulators (f32 additions are not reassociated by the
/// compiler, so this is what lets it vectorise).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_blocks, b_blocks) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_rest, b_rest) = (a_blocks.remainder(), b_blocks.remainder());
    for (x, y) in a_blocks.zip(b_blocks) {
        for ((lane, &u), &v) in lanes.iter_mut().zip(x).zip(y) {
            *lane += u * v;
        }
    }
    for ((lane, &u), &v) in lanes.iter_mut().zip(a_rest).zip(b_rest) {
        *lane += u * v;
    }
    ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
}

/// Scores every cell: `features` is `[cells][dims]`, `scores` is `[cells]`, and `nearest` is
/// scratch whose length is the number of neighbours `k` averaged (1 <= k <= entries). Squared
/// distances are `||a||^2 - 2 a.b + ||b||^2`, clamped at 0 against rounding, then rooted.
pub fn patchcore_scores(
    p: &PatchCore<'_>,
    features: &[f32],
    nearest: &mut [f32],
    scores: &mut [f32],
) -> Result<(), Error> {
    let dims = p.dims;
    let entries = p.coreset_sq_norms.len();
    let k = nearest.len();
    if dims == 0 || k == 0 || k > entries {
        return Err(Error::Shape(
            "PatchCore needs dims > 0 and 1 <= neighbours <= coreset entries",
        ));
    }
    check_len("coreset", p.coreset.len(), entries.saturating_mul(dims))?;
    check_len(
        "features",
        features.len(),
        scores.len().saturating_mul(dims),
    )?;
    for (cell, score) in features.chunks_exact(dims).zip(scores.iter_mut()) {
        let cell_norm = dot(cell, cell);
        nearest.fill(f32::INFINITY);
        for (entry, &entry_norm) in p.coreset.chunks_exact(dims).zip(p.coreset_sq_norms) {
            let d2 = (cell_norm - 2.0 * dot(cell, entry) + entry_norm).max(0.0);
            // `nearest` stays sorted ascending; insert when closer than the current k-th.
            if d2 < nearest[k - 1] {
                let mut i = k - 1;
                while i > 0 && nearest[i - 1] > d2 {
                    nearest[i] = nearest[i - 1];
                    i -= 1;
                }
                nearest[i] = d2;
            }
        }
        let total: f32 = nearest.iter().map(|&d2| sqrt(d2)).sum();
        *score = total / k as f32;
    }
    Ok(())
}
