//! PatchCore (Roth et al., CVPR 2022) on a single feature map.
//!
//! Scoring, per grid cell:
//! 1. "Locally aware" features: average pooling `pool_size x pool_size`, stride 1, "same" zero
//!    padding of `pool_size / 2`, divisor always `pool_size^2` (`count_include_pad = true`), i.e.
//!    `torch.nn.AvgPool2d(k, 1, k // 2)` as PatchCore and anomalib use it. The window is summed
//!    in f32 in (ky, kx) order and then divided, like the IR's `AvgPool`. `pool_size` must be odd so
//!    the grid keeps its size; 1 means no pooling.
//! 2. Score = mean over the `neighbors` nearest memory-bank entries of the L2 distance (not the
//!    squared distance FAISS reports). Squared distances are accumulated in f32 with a fixed
//!    order (see `squared_distance`), the square roots and the mean in f64.
//!
//! Fitting pools every training map the same way, gathers all cell vectors ("patches") and keeps
//! a greedy k-center coreset of them (see [`greedy_coreset`]).

use rand::Rng;
use rayon::prelude::*;

use super::random::{gaussian_projection, rng};
use super::{
    check_training_features, parse_config, reject_unknown_tensors, squared_distance,
    squared_distance_below, take_tensor, Scorer, ScorerKind, TensorMap,
};
use crate::ir::{Shape, Tensor};

/// Name of the memory bank tensor, `[memory_len, dim]`.
pub const PATCHCORE_MEMORY_BANK: &str = "memory_bank";

#[derive(Clone, Debug, PartialEq)]
pub struct PatchCore {
    /// Average pooling window (odd; 1 = none).
    pub pool_size: usize,
    /// How many nearest memory-bank entries a cell's score averages over.
    pub neighbors: usize,
    /// `[memory_len, dim]` row-major: pooled, unprojected training patches.
    pub memory_bank: Vec<f32>,
    /// Feature channels (length of each memory-bank row).
    pub dim: usize,
    /// Fraction of training patches the coreset kept (informational).
    pub sampling_ratio: f32,
}

#[derive(Clone, Debug)]
pub struct PatchCoreOptions {
    pub pool_size: usize,
    pub neighbors: usize,
    /// Fraction of all training patches kept in the memory bank, in (0, 1].
    pub sampling_ratio: f64,
    /// Dimension of the random projection used only while selecting the coreset; 0 or >= the
    /// feature dimension selects on the original features.
    pub projection_dim: usize,
    pub seed: u64,
}

impl Default for PatchCoreOptions {
    fn default() -> Self {
        PatchCoreOptions {
            pool_size: 3,
            neighbors: 1,
            sampling_ratio: 0.1,
            projection_dim: 128,
            seed: 0,
        }
    }
}

/// The JSON form of a PatchCore's hyper-parameters (`metadata()` / `from_parts`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    pool_size: usize,
    neighbors: usize,
    sampling_ratio: f32,
    dim: usize,
    memory_len: usize,
    /// Always "l2": documents that scores are plain (not squared) distances.
    distance: String,
    /// Always "avg_same_count_include_pad".
    pooling: String,
}

const DISTANCE: &str = "l2";
const POOLING: &str = "avg_same_count_include_pad";

impl PatchCore {
    pub fn memory_len(&self) -> usize {
        self.memory_bank.len() / self.dim.max(1)
    }

    /// Memory-bank row `i`.
    pub fn entry(&self, i: usize) -> &[f32] {
        &self.memory_bank[i * self.dim..(i + 1) * self.dim]
    }

    /// Step 1 of scoring (see the module docs): the locally aware feature map, same shape.
    pub fn pool(&self, features: &Tensor) -> Tensor {
        pool_same(features, self.pool_size)
    }

    /// Score of one pooled cell vector: mean L2 distance to its `neighbors` nearest entries.
    pub fn cell_score(&self, v: &[f32]) -> f32 {
        let k = self.neighbors.min(self.memory_len()).max(1);
        // The k smallest squared distances, kept sorted (k is small).
        let mut nearest: Vec<f32> = Vec::with_capacity(k + 1);
        for i in 0..self.memory_len() {
            let bound = if nearest.len() < k {
                f32::INFINITY
            } else {
                nearest[k - 1]
            };
            let d = squared_distance_below(v, self.entry(i), bound);
            if d < bound {
                let at = nearest.partition_point(|&x| x <= d);
                nearest.insert(at, d);
                nearest.truncate(k);
            }
        }
        (nearest.iter().map(|&d| (d as f64).sqrt()).sum::<f64>() / k as f64) as f32
    }

    pub(super) fn from_parts(
        metadata: &serde_json::Value,
        tensors: &TensorMap,
    ) -> Result<Self, String> {
        let config: Config = parse_config(ScorerKind::PatchCore, metadata)?;
        let key_err = |key: &str, msg: &str| format!("patchcore scorer_config: `{key}` {msg}");
        if config.pool_size == 0 || config.pool_size.is_multiple_of(2) {
            return Err(key_err(
                "pool_size",
                &format!("must be odd and >= 1, got {}", config.pool_size),
            ));
        }
        if config.dim == 0 {
            return Err(key_err("dim", "must be >= 1"));
        }
        if config.memory_len == 0 {
            return Err(key_err("memory_len", "must be >= 1"));
        }
        if config.neighbors == 0 || config.neighbors > config.memory_len {
            return Err(key_err(
                "neighbors",
                &format!(
                    "must be in 1..={} (memory_len), got {}",
                    config.memory_len, config.neighbors
                ),
            ));
        }
        if !(config.sampling_ratio > 0.0 && config.sampling_ratio <= 1.0) {
            return Err(key_err(
                "sampling_ratio",
                &format!("must be in (0, 1], got {}", config.sampling_ratio),
            ));
        }
        if config.distance != DISTANCE {
            return Err(key_err(
                "distance",
                &format!("must be \"{DISTANCE}\", got {:?}", config.distance),
            ));
        }
        if config.pooling != POOLING {
            return Err(key_err(
                "pooling",
                &format!("must be \"{POOLING}\", got {:?}", config.pooling),
            ));
        }
        reject_unknown_tensors(ScorerKind::PatchCore, tensors, &[PATCHCORE_MEMORY_BANK])?;
        let memory_bank = take_tensor(
            tensors,
            PATCHCORE_MEMORY_BANK,
            &[config.memory_len, config.dim],
        )?;
        Ok(PatchCore {
            pool_size: config.pool_size,
            neighbors: config.neighbors,
            memory_bank,
            dim: config.dim,
            sampling_ratio: config.sampling_ratio,
        })
    }
}

impl Scorer for PatchCore {
    fn kind(&self) -> ScorerKind {
        ScorerKind::PatchCore
    }
    fn channels(&self) -> usize {
        self.dim
    }
    fn grid(&self, features: Shape) -> (usize, usize) {
        (features.h, features.w)
    }
    fn score(&self, features: &Tensor) -> Vec<f32> {
        assert_eq!(
            features.shape.c, self.dim,
            "PatchCore memory bank has {} channels, the feature map {}",
            self.dim, features.shape.c
        );
        let pooled = self.pool(features);
        let Shape { c, h, w } = pooled.shape;
        let hwc = pooled.to_hwc();
        (0..h * w)
            .into_par_iter()
            .map(|cell| self.cell_score(&hwc[cell * c..(cell + 1) * c]))
            .collect()
    }
    fn metadata(&self) -> serde_json::Value {
        serde_json::to_value(Config {
            pool_size: self.pool_size,
            neighbors: self.neighbors,
            sampling_ratio: self.sampling_ratio,
            dim: self.dim,
            memory_len: self.memory_len(),
            distance: DISTANCE.into(),
            pooling: POOLING.into(),
        })
        .expect("a plain struct always serialises")
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![(
            PATCHCORE_MEMORY_BANK.into(),
            vec![self.memory_len(), self.dim],
            self.memory_bank.clone(),
        )]
    }
}

/// Average pooling, `k x k`, stride 1, zero padding `k / 2`, divisor `k^2` (k odd).
fn pool_same(features: &Tensor, k: usize) -> Tensor {
    if k <= 1 {
        return features.clone();
    }
    let Shape { c, h, w } = features.shape;
    let half = k / 2;
    let divisor = (k * k) as f32;
    let mut out = Tensor::zeros(features.shape);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0.0f32;
                for ky in 0..k {
                    for kx in 0..k {
                        let (sy, sx) = ((y + ky).wrapping_sub(half), (x + kx).wrapping_sub(half));
                        if sy < h && sx < w {
                            sum += features.at(ch, sy, sx);
                        }
                    }
                }
                out.data[(ch * h + y) * w + x] = sum / divisor;
            }
        }
    }
    out
}

/// Fits PatchCore: pools every training map, then keeps a greedy k-center coreset of
/// `max(1, ceil(patches * sampling_ratio))` pooled patches. `progress(done, total)` is called once
/// per coreset step.
pub fn fit_patchcore(
    features: &[Tensor],
    opts: &PatchCoreOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<PatchCore, String> {
    if opts.pool_size == 0 || opts.pool_size.is_multiple_of(2) {
        return Err(format!(
            "PatchCore pool size must be odd and >= 1, got {}",
            opts.pool_size
        ));
    }
    if opts.neighbors == 0 {
        return Err("PatchCore needs at least 1 neighbour".into());
    }
    if !(opts.sampling_ratio > 0.0 && opts.sampling_ratio <= 1.0) {
        return Err(format!(
            "PatchCore sampling ratio must be in (0, 1], got {}",
            opts.sampling_ratio
        ));
    }
    let shape = check_training_features(features)?;
    if opts.pool_size >= 2 * shape.h.max(shape.w) {
        // A wider window sees nothing more, and its cost grows with its area.
        return Err(format!(
            "PatchCore pool size {} is larger than a {}x{} feature grid can use (at most {})",
            opts.pool_size,
            shape.h,
            shape.w,
            2 * shape.h.max(shape.w) - 1
        ));
    }
    let dim = shape.c;
    let patches: Vec<f32> = features
        .par_iter()
        .map(|t| pool_same(t, opts.pool_size).to_hwc())
        .collect::<Vec<_>>()
        .concat();
    let n = patches.len() / dim;
    let keep = ((n as f64 * opts.sampling_ratio).ceil() as usize).clamp(1, n);
    if opts.neighbors > keep {
        return Err(format!(
            "PatchCore with {} neighbours needs at least that many memory-bank entries, but the coreset keeps {keep} of {n} patches",
            opts.neighbors
        ));
    }
    let selected = greedy_coreset(
        &patches,
        dim,
        keep,
        opts.projection_dim,
        opts.seed,
        progress,
    );
    if opts.neighbors > selected.len() {
        return Err(format!(
            "PatchCore with {} neighbours needs at least that many distinct training patches, found {}",
            opts.neighbors,
            selected.len()
        ));
    }
    let mut memory_bank = Vec::with_capacity(selected.len() * dim);
    for &i in &selected {
        memory_bank.extend_from_slice(&patches[i * dim..(i + 1) * dim]);
    }
    Ok(PatchCore {
        pool_size: opts.pool_size,
        neighbors: opts.neighbors,
        memory_bank,
        dim,
        sampling_ratio: opts.sampling_ratio as f32,
    })
}

/// Points per parallel task in the coreset loops: fixed, so results never depend on the thread
/// count.
const CHUNK: usize = 2048;
/// Relative safety margin of the coreset's triangle-inequality pruning (squared distances).
const PRUNE_MARGIN: f32 = 1.001;

/// Greedy k-center (minimax facility location) coreset of `points` (`[n, dim]` row-major):
/// indices of up to `keep` points, in selection order. Distances are measured after a seeded
/// Gaussian random projection to `projection_dim` dimensions (skipped when that is 0 or not
/// smaller than `dim`). Starts from a seeded random point, keeps each point's squared distance
/// to its nearest selected point (n floats, no n x n matrix) and repeatedly selects the farthest
/// point: O(n * keep * projection_dim). Stops early once every point coincides with a selected one
/// (duplicates add nothing to a memory bank). Ties go to the lowest index, so the result depends
/// only on the inputs and the seed.
pub fn greedy_coreset(
    points: &[f32],
    dim: usize,
    keep: usize,
    projection_dim: usize,
    seed: u64,
    progress: &dyn Fn(u64, u64),
) -> Vec<usize> {
    let n = points.len() / dim;
    if keep >= n {
        return (0..n).collect();
    }
    let mut rng = rng(seed);
    let start = rng.random_range(0..n);
    let projection_seed: u64 = rng.random();
    let (projected, pdim): (std::borrow::Cow<[f32]>, usize) =
        if projection_dim > 0 && projection_dim < dim {
            let matrix = gaussian_projection(projection_seed, projection_dim, dim);
            let mut out = vec![0.0f32; n * projection_dim];
            out.par_chunks_mut(projection_dim * 256)
                .zip(points.par_chunks(dim * 256))
                .for_each(|(out_rows, in_rows)| {
                    for (o, x) in out_rows
                        .chunks_exact_mut(projection_dim)
                        .zip(in_rows.chunks_exact(dim))
                    {
                        for (oj, row) in o.iter_mut().zip(matrix.chunks_exact(dim)) {
                            *oj = row.iter().zip(x).map(|(a, b)| a * b).sum();
                        }
                    }
                });
            (out.into(), projection_dim)
        } else {
            (points.into(), dim)
        };
    let projected: &[f32] = &projected;
    let mut min_dist = vec![f32::INFINITY; n];
    // Position in `selected` of each point's nearest centre, for the pruning below.
    let mut nearest = vec![0u32; n];
    let mut selected: Vec<usize> = Vec::with_capacity(keep);
    let mut next = start;
    let row = |p: usize| &projected[p * pdim..(p + 1) * pdim];
    progress(0, keep as u64);
    loop {
        selected.push(next);
        progress(selected.len() as u64, keep as u64);
        if selected.len() == keep {
            break;
        }
        let centre = row(next);
        let newest = (selected.len() - 1) as u32;
        // Triangle inequality: |p - c| >= |a - c| - |p - a| for p's nearest centre a, so when
        // |a - c| >= 2 |p - a| the new centre c cannot be nearer and p's distance is not computed.
        // In squared terms: gap(a, c) > 4 min_dist(p), with a margin far above f32 rounding so
        // skipping never changes a result. Late in the selection most points are skipped.
        let gaps: Vec<f32> = selected
            .par_iter()
            .map(|&s| squared_distance(row(s), centre))
            .collect();
        // Update the nearest-centre distances and find the farthest point in one pass.
        let (farthest, farthest_dist) = min_dist
            .par_chunks_mut(CHUNK)
            .zip(nearest.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(chunk, (dists, owners))| {
                let base = chunk * CHUNK;
                let mut best = (usize::MAX, f32::NEG_INFINITY);
                for (i, (d, owner)) in dists.iter_mut().zip(owners.iter_mut()).enumerate() {
                    let p = base + i;
                    if gaps[*owner as usize] <= 4.0 * *d * PRUNE_MARGIN {
                        let nd = squared_distance(row(p), centre);
                        if nd < *d {
                            *d = nd;
                            *owner = newest;
                        }
                    }
                    if *d > best.1 {
                        best = (p, *d);
                    }
                }
                best
            })
            .reduce(
                || (usize::MAX, f32::NEG_INFINITY),
                |a, b| {
                    if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) {
                        b
                    } else {
                        a
                    }
                },
            );
        if farthest == usize::MAX || farthest_dist <= 0.0 {
            break;
        }
        next = farthest;
    }
    selected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(c: usize, h: usize, w: usize, f: impl Fn(usize, usize, usize) -> f32) -> Tensor {
        let mut t = Tensor::zeros(Shape::new(c, h, w));
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    t.data[(ch * h + y) * w + x] = f(ch, y, x);
                }
            }
        }
        t
    }

    #[test]
    fn pooling_counts_padding_at_edges() {
        // A 1-channel 3x3 map of ones: the corner sees 4 of 9 window cells, the edge 6, the
        // centre 9; count_include_pad divides by 9 everywhere.
        let pc = PatchCore {
            pool_size: 3,
            neighbors: 1,
            memory_bank: vec![0.0],
            dim: 1,
            sampling_ratio: 1.0,
        };
        let pooled = pc.pool(&map(1, 3, 3, |_, _, _| 1.0));
        let expected = [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0].map(|v: f32| v / 9.0);
        assert_eq!(pooled.data, expected);
        // Pool size 1 is the identity.
        let t = map(2, 2, 3, |c, y, x| (c * 10 + y * 3 + x) as f32);
        let pc1 = PatchCore { pool_size: 1, ..pc };
        assert_eq!(pc1.pool(&t), t);
    }

    #[test]
    fn pooling_matches_a_direct_window_average() {
        let t = map(2, 4, 5, |c, y, x| {
            ((c * 31 + y * 7 + x * 3) % 11) as f32 - 4.0
        });
        let pooled = pool_same(&t, 3);
        // Interior cell (c=1, y=2, x=3): plain 3x3 mean.
        let direct: f32 = (1..4)
            .flat_map(|y| (2..5).map(move |x| (y, x)))
            .map(|(y, x)| t.at(1, y, x))
            .sum::<f32>()
            / 9.0;
        assert!((pooled.at(1, 2, 3) - direct).abs() < 1e-6);
        // Corner (0,0): only the 2x2 in-bounds part is summed, still divided by 9.
        let corner = (t.at(0, 0, 0) + t.at(0, 0, 1) + t.at(0, 1, 0) + t.at(0, 1, 1)) / 9.0;
        assert!((pooled.at(0, 0, 0) - corner).abs() < 1e-6);
    }

    #[test]
    fn scores_are_mean_l2_distance_to_nearest_entries() {
        // Memory bank in 2-D: (0,0), (3,4), (6,8). Feature map 1x2 cells, no pooling.
        let bank = vec![0.0, 0.0, 3.0, 4.0, 6.0, 8.0];
        let features = Tensor::from_vec(Shape::new(2, 1, 2), vec![0.0, 3.0, 0.0, 0.0]);
        // Cell 0 = (0,0): distances 0, 5, 10. Cell 1 = (3,0): distances 3, 4, sqrt(9+64).
        let one = PatchCore {
            pool_size: 1,
            neighbors: 1,
            memory_bank: bank.clone(),
            dim: 2,
            sampling_ratio: 1.0,
        };
        assert_eq!(one.score(&features), vec![0.0, 3.0]);
        let two = PatchCore {
            neighbors: 2,
            ..one.clone()
        };
        assert_eq!(two.score(&features), vec![2.5, 3.5]);
        let three = PatchCore {
            neighbors: 3,
            ..one
        };
        let expected = ((3.0 + 4.0 + 73f64.sqrt()) / 3.0) as f32;
        assert_eq!(three.score(&features), vec![5.0, expected]);
    }

    #[test]
    fn coreset_picks_the_farthest_point_and_is_deterministic() {
        // 200 points near the origin in 8-D and one far outlier; two picks must include it
        // wherever the start is.
        let mut rng = rng(7);
        let dim = 8;
        let mut points: Vec<f32> = (0..200 * dim).map(|_| rng.random::<f32>() * 0.1).collect();
        let outlier = 123;
        for v in &mut points[outlier * dim..(outlier + 1) * dim] {
            *v += 50.0;
        }
        for seed in 0..5 {
            let picked = greedy_coreset(&points, dim, 2, 4, seed, &|_, _| {});
            assert_eq!(picked.len(), 2);
            assert!(picked.contains(&outlier), "seed {seed}: {picked:?}");
            let again = greedy_coreset(&points, dim, 2, 4, seed, &|_, _| {});
            assert_eq!(picked, again);
        }
        // Every pick after the first is the point farthest from those already chosen (checked
        // without projection, brute force).
        let picked = greedy_coreset(&points, dim, 40, 0, 3, &|_, _| {});
        for step in 1..picked.len() {
            let dist_to_set = |p: usize| {
                picked[..step]
                    .iter()
                    .map(|&s| {
                        squared_distance(
                            &points[p * dim..(p + 1) * dim],
                            &points[s * dim..(s + 1) * dim],
                        )
                    })
                    .fold(f32::INFINITY, f32::min)
            };
            let best = (0..200).map(dist_to_set).fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(dist_to_set(picked[step]), best, "step {step}");
        }
    }

    #[test]
    fn coreset_stops_when_only_duplicates_remain() {
        let points = vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 1.0, 1.0];
        let picked = greedy_coreset(&points, 2, 3, 0, 0, &|_, _| {});
        assert_eq!(picked.len(), 2);
    }

    #[test]
    fn fit_is_deterministic_and_keeps_unprojected_pooled_patches() {
        let features: Vec<Tensor> = (0..6)
            .map(|i| {
                map(16, 5, 5, |c, y, x| {
                    (((i * 13 + c * 7 + y * 5 + x * 3) % 17) as f32).sin()
                })
            })
            .collect();
        let opts = PatchCoreOptions {
            projection_dim: 4,
            sampling_ratio: 0.2,
            ..Default::default()
        };
        let calls = std::sync::atomic::AtomicU64::new(0);
        let a = fit_patchcore(&features, &opts, &|_, _| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        let b = fit_patchcore(&features, &opts, &|_, _| {}).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.memory_len(), (150.0f64 * 0.2).ceil() as usize);
        assert!(calls.into_inner() > 1);
        // Every memory-bank row is some training image's pooled cell vector.
        let pooled: Vec<Vec<f32>> = features.iter().map(|t| a.pool(t).to_hwc()).collect();
        for i in 0..a.memory_len() {
            let row = a.entry(i);
            assert!(
                pooled
                    .iter()
                    .any(|hwc| hwc.chunks_exact(16).any(|cell| cell == row)),
                "row {i}"
            );
        }
        // Training images score ~0 on cells that are in the bank, and never negative.
        let scores = a.score(&features[0]);
        assert!(scores.iter().all(|&s| s >= 0.0));
        let other = PatchCoreOptions { seed: 1, ..opts };
        assert_ne!(
            fit_patchcore(&features, &other, &|_, _| {})
                .unwrap()
                .memory_bank,
            a.memory_bank
        );
    }

    #[test]
    fn fit_rejects_bad_options_and_inputs() {
        let t = map(4, 3, 3, |_, _, _| 0.5);
        let even = PatchCoreOptions {
            pool_size: 2,
            ..Default::default()
        };
        assert!(fit_patchcore(std::slice::from_ref(&t), &even, &|_, _| {})
            .unwrap_err()
            .contains("odd"));
        assert!(fit_patchcore(&[], &Default::default(), &|_, _| {}).is_err());
        let mut bad = t.clone();
        bad.data[5] = f32::NAN;
        let err = fit_patchcore(&[t.clone(), bad], &Default::default(), &|_, _| {}).unwrap_err();
        assert!(err.contains("feature map 1"), "{err}");
        let other = map(5, 3, 3, |_, _, _| 0.5);
        assert!(fit_patchcore(&[t, other], &Default::default(), &|_, _| {})
            .unwrap_err()
            .contains("shape"));
    }
}

#[cfg(test)]
mod parts_tests {
    use super::*;
    use crate::scorer::from_parts;

    fn parts(pc: &PatchCore) -> (serde_json::Value, TensorMap) {
        let tensors = pc
            .tensors()
            .into_iter()
            .map(|(n, s, d)| (n, (s, d)))
            .collect();
        (pc.metadata(), tensors)
    }

    fn sample() -> PatchCore {
        PatchCore {
            pool_size: 3,
            neighbors: 2,
            memory_bank: (0..12).map(|v| v as f32 * 0.5).collect(),
            dim: 4,
            sampling_ratio: 0.1,
        }
    }

    #[test]
    fn from_parts_round_trips() {
        let pc = sample();
        let (meta, tensors) = parts(&pc);
        assert_eq!(meta["memory_len"], 3);
        assert_eq!(meta["distance"], "l2");
        let back = from_parts(ScorerKind::PatchCore, &meta, &tensors).unwrap();
        assert_eq!((back.kind(), back.channels()), (ScorerKind::PatchCore, 4));
        assert_eq!(back.metadata(), meta);
        assert_eq!(back.tensors(), pc.tensors());
    }

    #[test]
    fn from_parts_names_what_is_wrong() {
        let (meta, tensors) = parts(&sample());
        let check = |meta: &serde_json::Value, tensors: &TensorMap, needle: &str| {
            let err = from_parts(ScorerKind::PatchCore, meta, tensors)
                .err()
                .expect("must be rejected");
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        };
        let mut t = tensors.clone();
        t.get_mut(PATCHCORE_MEMORY_BANK).unwrap().1[7] = f32::NAN;
        check(
            &meta,
            &t,
            "`memory_bank` holds a non-finite value (NaN) at flat index 7",
        );
        check(&meta, &TensorMap::new(), "`memory_bank` is missing");
        let mut t = tensors.clone();
        t.get_mut(PATCHCORE_MEMORY_BANK).unwrap().0 = vec![4, 3];
        check(&meta, &t, "`memory_bank` has shape [4, 3]");
        let mut t = tensors.clone();
        t.insert("means".into(), (vec![1], vec![0.0]));
        check(&meta, &t, "`means`");
        for (key, value, needle) in [
            ("pool_size", serde_json::json!(2), "pool_size"),
            ("neighbors", serde_json::json!(4), "neighbors"),
            ("neighbors", serde_json::json!(0), "neighbors"),
            ("sampling_ratio", serde_json::json!(1.5), "sampling_ratio"),
            ("distance", serde_json::json!("l2_squared"), "distance"),
            (
                "memory_len",
                serde_json::json!(2),
                "`memory_bank` has shape",
            ),
            ("bogus", serde_json::json!(1), "bogus"),
        ] {
            let mut m = meta.clone();
            m[key] = value;
            check(&m, &tensors, needle);
        }
        let mut m = meta.clone();
        m.as_object_mut().unwrap().remove("dim");
        check(&m, &tensors, "dim");
    }

    #[test]
    fn thread_count_does_not_change_the_fit() {
        // Enough patches (80 x 36) for several parallel chunks.
        let features: Vec<Tensor> = (0..80)
            .map(|i| {
                let data = (0..20 * 6 * 6)
                    .map(|j| (((i * 29 + j * 13) % 31) as f32 * 0.37).cos())
                    .collect();
                Tensor::from_vec(Shape::new(20, 6, 6), data)
            })
            .collect();
        let opts = PatchCoreOptions {
            projection_dim: 8,
            ..Default::default()
        };
        let fit = || fit_patchcore(&features, &opts, &|_, _| {}).unwrap();
        crate::scorer::assert_fit_independent_of_thread_count(fit);
    }
}
