use super::error::Error;

/// What a frame's cell scores add up to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The image score: the highest cell.
    pub max_score: f32,
    pub mean_score: f32,
    /// Some cell scored at or over the threshold.
    pub anomalous: bool,
}

/// Max, mean and verdict of a grid of cell scores (at least one cell).
pub fn summarize(cells: &[f32], threshold: f32) -> Result<Summary, Error> {
    if cells.is_empty() {
        return Err(Error::Shape("no cells to summarise"));
    }
    let max_score = cells.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = cells.iter().map(|&v| f64::from(v)).sum();
    Ok(Summary {
        max_score,
        mean_score: (sum / cells.len() as f64) as f32,
        anomalous: max_score >= threshold,
    })
}
