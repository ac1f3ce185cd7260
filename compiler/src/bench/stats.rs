//! Per-frame timing statistics.

use serde::Serialize;

/// Median and spread of per-frame times, in milliseconds. Percentiles interpolate linearly
/// between the sorted samples (numpy's default, which the onnxruntime script uses too).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub frames: usize,
}

impl Stats {
    /// Statistics of samples in nanoseconds; `None` when there are none.
    pub fn from_ns(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = samples.iter().map(|ns| ns * 1e-6).collect();
        sorted.sort_by(f64::total_cmp);
        Some(Stats {
            median_ms: percentile(&sorted, 0.5),
            p10_ms: percentile(&sorted, 0.1),
            p90_ms: percentile(&sorted, 0.9),
            min_ms: sorted[0],
            max_ms: sorted[sorted.len() - 1],
            frames: sorted.len(),
        })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4] ms, [10, 50, 90]) = [1.3, 2.5, 3.7]
        let stats = Stats::from_ns(&[4e6, 1e6, 3e6, 2e6]).unwrap();
        assert!((stats.p10_ms - 1.3).abs() < 1e-12);
        assert!((stats.median_ms - 2.5).abs() < 1e-12);
        assert!((stats.p90_ms - 3.7).abs() < 1e-12);
        assert_eq!((stats.min_ms, stats.max_ms, stats.frames), (1.0, 4.0, 4));
        assert_eq!(Stats::from_ns(&[7e6]).unwrap().p90_ms, 7.0);
        assert!(Stats::from_ns(&[]).is_none());
    }
}
