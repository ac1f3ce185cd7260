//! PatchCore: a cell's score is the mean L2 distance from its feature vector to its `k` nearest
//! entries of the memory bank (the coreset kept from training).

use super::error::{check_len, Error};
use super::linalg::{dot, squared_distance};
use super::math::sqrt_f64;

/// The memory bank: `entries` feature vectors of `dims` values and their squared norms,
/// precomputed by the compiler.
#[derive(Clone, Copy, Debug)]
pub struct PatchCore<'a> {
    pub dims: usize,
    /// `[entries][dims]`.
    pub bank: &'a [f32],
    /// `[entries]`: `||b||^2` of each entry.
    pub bank_norms: &'a [f32],
}

/// One of a cell's nearest memory-bank entries, while they are searched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    /// Squared distance, from the expansion `||a||^2 - 2 a.b + ||b||^2` (clamped at 0).
    pub distance2: f32,
    pub index: usize,
}

impl Neighbor {
    /// An empty slot: farther than any entry.
    pub const FAR: Neighbor = Neighbor {
        distance2: f32::INFINITY,
        index: usize::MAX,
    };
}

/// Scores every cell: `features` is `[cells][dims]`, `scores` is `[cells]`, and `nearest` is
/// scratch whose length is the number of neighbours `k` averaged (1 <= k <= entries).
///
/// The search ranks entries by `max(0, ||a||^2 - 2 a.b + ||b||^2)` (one dot product per entry;
/// ties keep the lowest index). That expansion loses precision when `a` is close to `b`, so the
/// `k` winners' squared distances are recomputed exactly as `sum (a - b)^2`; the score is the
/// mean of their square roots (roots and mean in f64).
pub fn patchcore_scores(
    p: &PatchCore<'_>,
    features: &[f32],
    nearest: &mut [Neighbor],
    scores: &mut [f32],
) -> Result<(), Error> {
    let dims = p.dims;
    let entries = p.bank_norms.len();
    let k = nearest.len();
    if dims == 0 || k == 0 || k > entries {
        return Err(Error::Shape(
            "PatchCore needs dims > 0 and 1 <= neighbours <= memory bank entries",
        ));
    }
    check_len("bank", p.bank.len(), entries.saturating_mul(dims))?;
    check_len(
        "features",
        features.len(),
        scores.len().saturating_mul(dims),
    )?;
    for (cell, score) in features.chunks_exact(dims).zip(scores.iter_mut()) {
        let cell_norm = dot(cell, cell);
        nearest.fill(Neighbor::FAR);
        for (index, (entry, &entry_norm)) in p.bank.chunks_exact(dims).zip(p.bank_norms).enumerate()
        {
            let distance2 = (cell_norm - 2.0 * dot(cell, entry) + entry_norm).max(0.0);
            // `nearest` stays sorted ascending; insert when strictly closer than the k-th, after
            // any equal ones (so ties keep the lowest index).
            if distance2 < nearest[k - 1].distance2 {
                let mut i = k - 1;
                while i > 0 && nearest[i - 1].distance2 > distance2 {
                    nearest[i] = nearest[i - 1];
                    i -= 1;
                }
                nearest[i] = Neighbor { distance2, index };
            }
        }
        let mut total = 0.0f64;
        for n in nearest.iter() {
            let entry = &p.bank[n.index * dims..][..dims];
            total += sqrt_f64(f64::from(squared_distance(cell, entry)));
        }
        *score = (total / k as f64) as f32;
    }
    Ok(())
}
