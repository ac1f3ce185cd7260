//! Metrics (AUROC, confusion, F1, best-F1 threshold) and the per-cell heatmap image.

mod heatmap;

pub use heatmap::write_heatmap;

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann-Whitney U statistic with averaged ranks).
/// `None` when either class is missing. NaN scores sort above every number (`f32::total_cmp`).
pub fn auroc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' 1-based ranks, tied groups sharing their average rank.
    let mut rank_sum = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]].total_cmp(&scores[order[start]]).is_eq() {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end].iter().filter(|&&i| positive[i]).count();
        rank_sum += average_rank * positives as f64;
        start = end;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

/// Counts outcomes with "predicted anomalous" meaning `score >= threshold`.
pub fn confusion(scores: &[f32], positive: &[bool], threshold: f32) -> Confusion {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    let mut c = Confusion::default();
    for (&score, &pos) in scores.iter().zip(positive) {
        match (score >= threshold, pos) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

/// Each ratio is 0 when its denominator is 0 (nothing predicted / nothing to find), the usual
/// convention (scikit-learn's `zero_division=0`), so a model that flags nothing scores 0, not NaN.
impl Confusion {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// The threshold (one of the distinct scores) with the highest F1, and that F1. Among equally good
/// thresholds the highest wins (fewest false alarms). With no scores: `(f32::INFINITY, 0.0)`.
pub fn best_f1_threshold(scores: &[f32], positive: &[bool]) -> (f32, f64) {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    let total_pos = positive.iter().filter(|&&p| p).count();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut best = (f32::INFINITY, 0.0f64);
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    // Lower the threshold one distinct score at a time; everything at or above it is flagged.
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]].total_cmp(&threshold).is_eq() {
            if positive[order[i]] {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let f1 = ratio(2 * tp, tp + fp + total_pos);
        if f1 > best.1 || best.0 == f32::INFINITY {
            best = (threshold, f1);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_hand_checked_cases() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        // Pairs (pos, neg): (0.4 > 0.3 yes), (0.4 > 0.5 no), (0.7 > 0.3), (0.7 > 0.5): 3 of 4.
        assert_eq!(
            auroc(&[0.3, 0.4, 0.5, 0.7], &[false, true, false, true]),
            Some(0.75)
        );
        // All tied: every pair counts one half.
        assert_eq!(
            auroc(&[1.0; 5], &[true, false, true, false, false]),
            Some(0.5)
        );
        // One tie across classes: pos {2, 3}, neg {1, 2}: pairs 1 + 0.5 + 1 + 1 = 3.5 of 4.
        assert_eq!(
            auroc(&[2.0, 3.0, 1.0, 2.0], &[true, true, false, false]),
            Some(0.875)
        );
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(auroc(&[1.0, 2.0], &[false, false]), None);
        assert_eq!(auroc(&[], &[]), None);
    }

    #[test]
    fn confusion_and_f1() {
        let scores = [0.1, 0.5, 0.5, 0.9, 0.3];
        let positive = [false, true, false, true, true];
        let c = confusion(&scores, &positive, 0.5);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 1,
                fn_: 1
            }
        );
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.accuracy(), 0.6);
        let none = confusion(&scores, &positive, 2.0);
        assert_eq!((none.tp, none.fp), (0, 0));
        assert_eq!(
            (none.precision(), none.recall(), none.f1()),
            (0.0, 0.0, 0.0)
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"tp":2,"fp":1,"tn":1,"fn":1}"#);
    }

    #[test]
    fn best_threshold_scans_distinct_scores() {
        // Separable: the lowest positive score is the best threshold, F1 = 1.
        let (t, f1) = best_f1_threshold(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true]);
        assert_eq!((t, f1), (0.7, 1.0));
        // Overlap: thresholds 0.9 -> F1 2/4 (tp1, fp0, fn2: 2/(2+2)), 0.6 -> tp1 fp1 fn2: 2/5,
        // 0.4 -> tp2 fp1 fn1: 4/6, 0.2 -> tp3 fp1: 6/7, 0.1 -> tp3 fp2: 6/8. Best 0.2.
        let scores = [0.9, 0.6, 0.4, 0.2, 0.1];
        let positive = [true, false, true, true, false];
        let (t, f1) = best_f1_threshold(&scores, &positive);
        assert_eq!(t, 0.2);
        assert!((f1 - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(
            confusion(&scores, &positive, t).f1(),
            f1,
            "agrees with confusion()"
        );
        // Ties at the threshold are all flagged together.
        let (t, f1) = best_f1_threshold(&[0.5, 0.5, 0.1], &[true, false, false]);
        assert_eq!(t, 0.5);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(best_f1_threshold(&[], &[]), (f32::INFINITY, 0.0));
        // No positives: F1 is 0 everywhere; the highest score is returned.
        assert_eq!(best_f1_threshold(&[0.3, 0.8], &[false, false]), (0.8, 0.0));
    }
}
