//! The two anomaly scorers of FOMO-AD, fitted on backbone feature maps (CHW, one per training
//! image) and evaluated per grid cell: PatchCore (nearest neighbours in a coreset memory bank) and
//! a Gaussian mixture (scikit-learn semantics). Pure Rust and f64 where it matters: these are the
//! reference implementations the code generators are checked against.
//!
//! A fitted scorer is stored as named f32 tensors ([`Scorer::tensors`]) plus a JSON config
//! ([`Scorer::metadata`]); [`from_parts`] rebuilds and validates it from those two.

mod gmm;
mod linalg;
mod patchcore;
mod random;

use std::collections::HashMap;

use crate::ir::{Shape, Tensor};

pub use gmm::{
    fit_gmm, Capacity, Covariance, Gmm, GmmOptions, GmmScore, GmmScoreMode, GMM_LOG_WEIGHTS,
    GMM_MEANS, GMM_PRECISIONS_CHOLESKY, GMM_PROJECTION,
};
pub use patchcore::{fit_patchcore, PatchCore, PatchCoreOptions, PATCHCORE_MEMORY_BANK};

/// Which scorer an artifact holds (`"patchcore"` / `"gmm"` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorerKind {
    PatchCore,
    Gmm,
}

impl ScorerKind {
    pub fn name(self) -> &'static str {
        match self {
            ScorerKind::PatchCore => "patchcore",
            ScorerKind::Gmm => "gmm",
        }
    }
}

impl std::fmt::Display for ScorerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Named tensors as stored in an artifact: name -> (shape, row-major data).
pub type TensorMap = HashMap<String, (Vec<usize>, Vec<f32>)>;

pub trait Scorer: Send + Sync {
    fn kind(&self) -> ScorerKind;
    /// Feature channels the scorer expects per cell (the backbone's output channels).
    fn channels(&self) -> usize;
    /// (rows, cols) of the cell grid this scorer outputs for a feature map of `features` shape.
    fn grid(&self, features: Shape) -> (usize, usize);
    /// Cell scores, row-major, len = rows*cols. Reference implementation.
    ///
    /// Panics if `features.shape.c != self.channels()`: callers check compatibility when they
    /// pair a scorer with a backbone.
    fn score(&self, features: &Tensor) -> Vec<f32>;
    /// Hyper-parameters and normalisation constants as JSON (goes into artifact metadata).
    fn metadata(&self) -> serde_json::Value;
    /// Named f32 tensors (name, shape, row-major data) to store in the artifact.
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)>;
}

/// Rebuilds a scorer from its [`Scorer::metadata`] and [`Scorer::tensors`], checking everything:
/// unknown or missing keys and tensors, shapes that disagree with the config, NaN/Inf values,
/// hyper-parameters out of range. The error names the tensor or key at fault.
pub fn from_parts(
    kind: ScorerKind,
    metadata: &serde_json::Value,
    tensors: &TensorMap,
) -> Result<Box<dyn Scorer>, String> {
    Ok(match kind {
        ScorerKind::PatchCore => Box::new(PatchCore::from_parts(metadata, tensors)?),
        ScorerKind::Gmm => Box::new(Gmm::from_parts(metadata, tensors)?),
    })
}

/// Parses a scorer config, prefixing serde's message (which names the key) with where it was.
fn parse_config<T: serde::de::DeserializeOwned>(
    kind: ScorerKind,
    metadata: &serde_json::Value,
) -> Result<T, String> {
    serde_json::from_value(metadata.clone()).map_err(|e| format!("{kind} scorer_config: {e}"))
}

/// Takes tensor `name` out of `tensors`, checking its shape and that every value is finite.
fn take_tensor(tensors: &TensorMap, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    let (actual, data) = tensors
        .get(name)
        .ok_or_else(|| format!("tensor `{name}` is missing"))?;
    if actual.as_slice() != shape {
        return Err(format!(
            "tensor `{name}` has shape {actual:?}, expected {shape:?} from the scorer config"
        ));
    }
    let expected_len: usize = shape.iter().product();
    if data.len() != expected_len {
        return Err(format!(
            "tensor `{name}` holds {} values but its shape {shape:?} needs {expected_len}",
            data.len()
        ));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor `{name}` holds a non-finite value ({}) at flat index {i}",
            data[i]
        ));
    }
    Ok(data.clone())
}

/// Rejects tensors the scorer does not know (most likely a typo or an artifact of another kind).
fn reject_unknown_tensors(
    kind: ScorerKind,
    tensors: &TensorMap,
    known: &[&str],
) -> Result<(), String> {
    let mut unknown: Vec<&String> = tensors
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some(name) => Err(format!(
            "tensor `{name}` is not used by the {kind} scorer (expected only {known:?})"
        )),
        None => Ok(()),
    }
}

/// Checks a list of training feature maps: non-empty, one shape, finite values.
fn check_training_features(features: &[Tensor]) -> Result<Shape, String> {
    let first = features
        .first()
        .ok_or_else(|| "no training feature maps given".to_string())?;
    let shape = first.shape;
    if shape.is_empty() {
        return Err(format!("training feature maps are empty ({shape})"));
    }
    for (i, t) in features.iter().enumerate() {
        if t.shape != shape {
            return Err(format!(
                "training feature map {i} has shape {}, the first one has {shape}",
                t.shape
            ));
        }
        if t.data.len() != shape.len() {
            return Err(format!(
                "training feature map {i} holds the wrong number of values"
            ));
        }
        if let Some(j) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "training feature map {i} holds a non-finite value at flat index {j}"
            ));
        }
    }
    Ok(shape)
}

/// Squared L2 distance in f32 with eight fixed accumulator lanes: vectorises well and the summation
/// order is fixed, so results do not depend on threads or machines.
#[inline]
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0.0f32; 8];
    let split = a.len() / 8 * 8;
    for (ca, cb) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        accumulate(&mut lanes, ca, cb);
    }
    combine(&lanes) + tail(&a[split..], &b[split..])
}

/// [`squared_distance`] (the same value, bit for bit) when it is below `bound`, otherwise some
/// value >= `bound`: stops early once the partial sum reaches `bound`. Exact because every term
/// is non-negative and float addition is monotonic, so partial sums never exceed the total.
#[inline]
fn squared_distance_below(a: &[f32], b: &[f32], bound: f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0.0f32; 8];
    let split = a.len() / 8 * 8;
    for (block_a, block_b) in a[..split].chunks(32).zip(b[..split].chunks(32)) {
        for (ca, cb) in block_a.chunks_exact(8).zip(block_b.chunks_exact(8)) {
            accumulate(&mut lanes, ca, cb);
        }
        let partial = combine(&lanes);
        if partial >= bound {
            return partial;
        }
    }
    combine(&lanes) + tail(&a[split..], &b[split..])
}

#[inline(always)]
fn accumulate(lanes: &mut [f32; 8], a: &[f32], b: &[f32]) {
    for l in 0..8 {
        let d = a[l] - b[l];
        lanes[l] += d * d;
    }
}

#[inline(always)]
fn combine(lanes: &[f32; 8]) -> f32 {
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
}

#[inline(always)]
fn tail(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Fits twice, on one and on three threads, and asserts the results are identical: parallel
/// reductions must not depend on how rayon splits the work.
#[cfg(test)]
pub(crate) fn assert_fit_independent_of_thread_count<T: PartialEq + std::fmt::Debug + Send>(
    fit: impl Fn() -> T + Send + Sync,
) {
    let on = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool of 1 or 3 threads can be built")
            .install(&fit)
    };
    assert_eq!(on(1), on(3));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_distance_is_exact_below_the_bound() {
        let a: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..77).map(|i| (i as f32 * 0.11).cos()).collect();
        let full = squared_distance(&a, &b);
        let direct: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum();
        assert!((full as f64 - direct).abs() < 1e-5 * direct);
        assert_eq!(squared_distance_below(&a, &b, f32::INFINITY), full);
        assert_eq!(squared_distance_below(&a, &b, full * 1.0001), full);
        assert!(squared_distance_below(&a, &b, full * 0.1) >= full * 0.1);
    }
}
