//! Seeded random numbers shared by the scorers: everything derives from a `u64` seed through
//! ChaCha8, so the same seed gives the same model on every machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// One standard normal sample (Box-Muller; `1 - u` keeps the logarithm's argument in (0, 1]).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A `[rows, cols]` row-major Gaussian random projection with N(0, 1/rows) entries, as
/// scikit-learn's `GaussianRandomProjection(n_components=rows)` draws (its `components_` has
/// exactly this layout: projected = components_ @ x).
pub fn gaussian_projection(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
    let mut rng = rng(seed);
    let scale = 1.0 / (rows as f64).sqrt();
    (0..rows * cols)
        .map(|_| (standard_normal(&mut rng) * scale) as f32)
        .collect()
}

/// `matrix @ v` for a `[rows, v.len()]` row-major matrix, accumulated in f64, rounded to f32.
pub fn project(matrix: &[f32], v: &[f32]) -> Vec<f32> {
    let cols = v.len();
    matrix
        .chunks_exact(cols)
        .map(|row| {
            row.iter()
                .zip(v)
                .map(|(&m, &x)| m as f64 * x as f64)
                .sum::<f64>() as f32
        })
        .collect()
}
