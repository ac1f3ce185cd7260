use super::super::linalg::precision_cholesky;
use super::super::random::{rng, standard_normal};
use super::super::{from_parts, TensorMap};
use super::*;

fn tensor_map(scorer: &dyn Scorer) -> TensorMap {
    scorer
        .tensors()
        .into_iter()
        .map(|(name, shape, data)| (name, (shape, data)))
        .collect()
}

/// A GMM over raw cells (no pooling, no projection) with the given f64 parameters.
fn raw_gmm(
    covariance: Covariance,
    dim: usize,
    means: &[f64],
    precisions: &[f64],
    weights: &[f64],
) -> Gmm {
    Gmm {
        pool_kernel: 1,
        pool_stride: 1,
        projection: None,
        covariance,
        components: weights.len(),
        dim,
        means: means.iter().map(|&v| v as f32).collect(),
        precisions_cholesky: precisions.iter().map(|&v| v as f32).collect(),
        log_weights: weights.iter().map(|&w| w.ln() as f32).collect(),
        score_mode: GmmScore::Nll,
    }
}

/// Feature maps of shape [d, 1, 1], one per sample, so every sample is one cell.
fn samples_as_maps(samples: &[Vec<f32>]) -> Vec<Tensor> {
    samples
        .iter()
        .map(|s| Tensor::from_vec(Shape::new(s.len(), 1, 1), s.clone()))
        .collect()
}

fn gaussian_samples(seed: u64, n: usize, centres: &[(f64, Vec<f64>)]) -> Vec<Vec<f32>> {
    let mut rng = rng(seed);
    (0..n)
        .map(|i| {
            let (scale, centre) = &centres[i % centres.len()];
            centre
                .iter()
                .map(|&c| (c + scale * standard_normal(&mut rng)) as f32)
                .collect()
        })
        .collect()
}

fn normal_pdf_ln(x: f64, mu: f64, var: f64) -> f64 {
    -0.5 * (std::f64::consts::TAU * var).ln() - (x - mu).powi(2) / (2.0 * var)
}

#[test]
fn one_dimensional_log_likelihood_matches_closed_form() {
    // Mixture 0.3 N(-1, 0.25) + 0.7 N(2, 4), as f32-exact parameters.
    let g = raw_gmm(Covariance::Full, 1, &[-1.0, 2.0], &[2.0, 0.5], &[0.3, 0.7]);
    let gd = Gmm {
        covariance: Covariance::Diag,
        ..g.clone()
    };
    for x in [-3.0f64, -1.0, 0.0, 0.5, 2.0, 7.5] {
        let expected = (0.3 * normal_pdf_ln(x, -1.0, 0.25).exp()
            + 0.7 * normal_pdf_ln(x, 2.0, 4.0).exp())
        .ln();
        let weights_error =
            (0.3f32.ln() as f64 - 0.3f64.ln()).abs() + (0.7f32.ln() as f64 - 0.7f64.ln()).abs();
        for model in [&g, &gd] {
            let got = model.log_likelihood(&[x as f32]);
            assert!(
                (got - expected).abs() < 1e-9 + weights_error,
                "x={x}: {got} vs {expected}"
            );
        }
    }
}

#[test]
fn two_dimensional_full_covariance_matches_closed_form() {
    let (a, b, c) = (2.0, 0.5, 1.0); // covariance [[a, b], [b, c]]
    let u = precision_cholesky(&[a, b, b, c], 2).unwrap();
    let mu = [0.5, -1.0];
    let g = raw_gmm(Covariance::Full, 2, &mu, &u, &[1.0]);
    let det = a * c - b * b;
    for x in [[0.0f32, 0.0], [0.5, -1.0], [3.0, 1.5], [-2.0, 4.0]] {
        let (dx, dy) = (x[0] as f64 - mu[0], x[1] as f64 - mu[1]);
        let maha = (c * dx * dx - 2.0 * b * dx * dy + a * dy * dy) / det;
        let expected = -0.5 * (2.0 * std::f64::consts::TAU.ln() + det.ln() + maha);
        let got = g.log_likelihood(&x);
        // Parameters are stored as f32: allow their rounding.
        assert!(
            (got - expected).abs() < 1e-5 * expected.abs().max(1.0),
            "{x:?}: {got} vs {expected}"
        );
    }
}

#[test]
fn diag_and_full_agree_on_diagonal_models_and_data() {
    // Same model stored both ways.
    let prec = [1.5, 0.5, 2.0, 0.7, 1.1, 0.9];
    let mut full = vec![0.0; 2 * 9];
    for k in 0..2 {
        for i in 0..3 {
            full[k * 9 + i * 3 + i] = prec[k * 3 + i];
        }
    }
    let means = [0.0, 1.0, 2.0, -1.0, 0.5, 3.0];
    let diag = raw_gmm(Covariance::Diag, 3, &means, &prec, &[0.4, 0.6]);
    let fullm = raw_gmm(Covariance::Full, 3, &means, &full, &[0.4, 0.6]);
    for x in [[0.0f32, 0.0, 0.0], [1.0, 2.0, 3.0], [-4.0, 0.5, 2.5]] {
        assert!((diag.log_likelihood(&x) - fullm.log_likelihood(&x)).abs() < 1e-12);
    }
    // Fitted on axis-aligned data with one component, both find nearly the same density.
    let samples = gaussian_samples(3, 4000, &[(1.0, vec![1.0, -2.0, 0.5])]);
    let maps = samples_as_maps(&samples);
    let opts = |covariance| GmmOptions {
        components: 1,
        covariance,
        pool_kernel: 1,
        pool_stride: 1,
        score_mode: GmmScoreMode::Nll,
        ..Default::default()
    };
    let fd = fit_gmm(&maps, &opts(Covariance::Diag), &|_, _| {}).unwrap();
    let ff = fit_gmm(&maps, &opts(Covariance::Full), &|_, _| {}).unwrap();
    for m in 0..3 {
        assert!((fd.means[m] - ff.means[m]).abs() < 1e-6);
    }
    for x in &samples[..50] {
        let (a, b) = (fd.log_likelihood(x), ff.log_likelihood(x));
        assert!((a - b).abs() < 0.02 * a.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn em_recovers_separated_clusters_and_is_deterministic() {
    let truth = [
        (0.5, vec![0.0, 0.0]),
        (0.5, vec![10.0, 0.0]),
        (1.0, vec![0.0, 10.0]),
    ];
    let samples = gaussian_samples(11, 3000, &truth);
    let maps = samples_as_maps(&samples);
    let opts = GmmOptions {
        components: 3,
        pool_kernel: 1,
        pool_stride: 1,
        seed: 5,
        ..Default::default()
    };
    let iterations = std::sync::atomic::AtomicU64::new(0);
    let g = fit_gmm(&maps, &opts, &|done, total| {
        assert_eq!(total, 100);
        iterations.store(done, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert!(
        iterations.into_inner() < 100,
        "EM should converge on clean clusters"
    );
    for (scale, centre) in &truth {
        let k = (0..3)
            .min_by(|&a, &b| {
                let da = (g.means[a * 2] as f64 - centre[0]).powi(2)
                    + (g.means[a * 2 + 1] as f64 - centre[1]).powi(2);
                let db = (g.means[b * 2] as f64 - centre[0]).powi(2)
                    + (g.means[b * 2 + 1] as f64 - centre[1]).powi(2);
                da.total_cmp(&db)
            })
            .unwrap();
        assert!(
            (g.means[k * 2] as f64 - centre[0]).abs() < 0.1,
            "{:?}",
            g.means
        );
        assert!(
            (g.means[k * 2 + 1] as f64 - centre[1]).abs() < 0.1,
            "{:?}",
            g.means
        );
        assert!(((g.log_weights[k] as f64).exp() - 1.0 / 3.0).abs() < 0.02);
        // precision diag ~ 1 / scale
        assert!((g.precisions_cholesky[k * 4] as f64 * scale - 1.0).abs() < 0.1);
        assert_eq!(g.precisions_cholesky[k * 4 + 2], 0.0, "upper-triangular");
    }
    assert_eq!(fit_gmm(&maps, &opts, &|_, _| {}).unwrap(), g);
    // Standardized statistics describe the training cells: z-scores have mean 0 and variance 1.
    let GmmScore::Standardized { mean, std } = g.score_mode else {
        panic!("standardized by default")
    };
    let z: Vec<f64> = samples
        .iter()
        .map(|s| (g.log_likelihood(s) - mean) / std)
        .collect();
    let zm = z.iter().sum::<f64>() / z.len() as f64;
    let zv = z.iter().map(|v| (v - zm).powi(2)).sum::<f64>() / z.len() as f64;
    assert!(zm.abs() < 1e-9 && (zv - 1.0).abs() < 1e-9, "{zm} {zv}");
    assert_eq!(g.score(&maps[0]), vec![z[0].abs() as f32]);
}

#[test]
fn default_pooling_gives_edge_impulse_grid() {
    let g = raw_gmm(Covariance::Diag, 1, &[0.0], &[1.0], &[1.0]);
    let g = Gmm {
        pool_kernel: 4,
        pool_stride: 2,
        ..g
    };
    for width in [96usize, 160, 224, 320] {
        let side = width / 8 / 2 - 1;
        assert_eq!(
            g.grid(Shape::new(1, width / 8, width / 8)),
            (side, side),
            "width {width}"
        );
    }
    assert_eq!(g.grid(Shape::new(1, 3, 12)), (0, 5));
}

#[test]
fn valid_pooling_averages_whole_windows_only() {
    // 1 channel, 5x6, value = 10 y + x. Kernel 2, stride 2 -> 2x3, windows never overlap the edge.
    let data: Vec<f32> = (0..5)
        .flat_map(|y| (0..6).map(move |x| (10 * y + x) as f32))
        .collect();
    let t = Tensor::from_vec(Shape::new(1, 5, 6), data);
    let p = pool_valid(&t, 2, 2);
    assert_eq!(p.shape, Shape::new(1, 2, 3));
    assert_eq!(p.data, vec![5.5, 7.5, 9.5, 25.5, 27.5, 29.5]);
    let p = pool_valid(&t, 4, 2);
    assert_eq!(p.shape, Shape::new(1, 1, 2));
    assert_eq!(p.data, vec![16.5, 18.5]);
}

#[test]
fn projection_is_applied_after_pooling_and_seeded() {
    let maps: Vec<Tensor> = (0..20)
        .map(|i| {
            let data = (0..6 * 6 * 6)
                .map(|j| (((i * 37 + j * 11) % 23) as f32 / 7.0).sin())
                .collect();
            Tensor::from_vec(Shape::new(6, 6, 6), data)
        })
        .collect();
    let opts = GmmOptions {
        components: 2,
        projection_dim: Some(3),
        covariance: Covariance::Diag,
        ..Default::default()
    };
    let g = fit_gmm(&maps, &opts, &|_, _| {}).unwrap();
    assert_eq!((g.dim, g.input_channels()), (3, 6));
    let p = g.projection.clone().unwrap();
    assert_eq!(p.len(), 18);
    let pooled = g.pool(&maps[4]);
    assert_eq!(pooled.shape, Shape::new(6, 2, 2));
    let cell: Vec<f32> = (0..6).map(|c| pooled.at(c, 1, 0)).collect();
    let projected = g.project(&cell);
    for r in 0..3 {
        let expected: f64 = (0..6).map(|c| p[r * 6 + c] as f64 * cell[c] as f64).sum();
        assert!((projected[r] as f64 - expected).abs() < 1e-6);
    }
    let scores = g.score(&maps[4]);
    assert_eq!(
        scores[2],
        g.score_from_log_likelihood(g.log_likelihood(&projected))
    );
    assert_eq!(
        fit_gmm(&maps, &opts, &|_, _| {}).unwrap().projection,
        g.projection
    );
    let other = GmmOptions { seed: 9, ..opts };
    assert_ne!(
        fit_gmm(&maps, &other, &|_, _| {}).unwrap().projection,
        g.projection
    );
}

#[test]
fn fit_rejects_too_few_cells() {
    let maps = samples_as_maps(&[vec![1.0, 2.0]]);
    let opts = GmmOptions {
        components: 2,
        pool_kernel: 1,
        pool_stride: 1,
        ..Default::default()
    };
    assert!(fit_gmm(&maps, &opts, &|_, _| {})
        .unwrap_err()
        .contains("at least"));
    let small = samples_as_maps(&[vec![1.0, 2.0]]);
    assert!(fit_gmm(&small, &GmmOptions::default(), &|_, _| {})
        .unwrap_err()
        .contains("does not fit"));
}

fn sample_model() -> Gmm {
    let u0 = precision_cholesky(&[2.0, 0.3, 0.3, 1.0], 2).unwrap();
    let u1 = precision_cholesky(&[1.0, -0.2, -0.2, 0.5], 2).unwrap();
    let mut g = raw_gmm(
        Covariance::Full,
        2,
        &[0.0, 1.0, 2.0, -1.0],
        &[u0, u1].concat(),
        &[0.25, 0.75],
    );
    g.projection = Some(vec![0.5, -0.25, 1.0, 0.1, 0.2, 0.3]);
    g.score_mode = GmmScore::Standardized {
        mean: -3.5,
        std: 1.25,
    };
    g.pool_kernel = 2;
    g
}

#[test]
fn from_parts_round_trips() {
    let g = sample_model();
    let meta = g.metadata();
    assert_eq!(meta["score"]["mode"], "standardized");
    assert_eq!(meta["covariance"], "full");
    assert_eq!(meta["channels"], 3);
    let back = from_parts(ScorerKind::Gmm, &meta, &tensor_map(&g)).unwrap();
    assert_eq!(back.kind(), ScorerKind::Gmm);
    assert_eq!(back.metadata(), meta);
    assert_eq!(back.tensors(), g.tensors());
    let t = Tensor::from_vec(
        Shape::new(3, 3, 3),
        (0..27).map(|v| v as f32 / 10.0).collect(),
    );
    assert_eq!(back.score(&t), g.score(&t));
    let diag = Gmm {
        covariance: Covariance::Diag,
        precisions_cholesky: vec![1.0, 2.0, 0.5, 0.25],
        projection: None,
        score_mode: GmmScore::Nll,
        ..sample_model()
    };
    let back = from_parts(ScorerKind::Gmm, &diag.metadata(), &tensor_map(&diag)).unwrap();
    assert_eq!(back.tensors(), diag.tensors());
}

#[test]
fn from_parts_names_what_is_wrong() {
    let g = sample_model();
    let meta = g.metadata();
    let check = |meta: &serde_json::Value, tensors: &TensorMap, needle: &str| {
        let err = from_parts(ScorerKind::Gmm, meta, tensors)
            .err()
            .expect("must be rejected");
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    let mut t = tensor_map(&g);
    t.get_mut(GMM_MEANS).unwrap().1[1] = f32::NAN;
    check(&meta, &t, "`means`");
    let mut t = tensor_map(&g);
    t.get_mut(GMM_PRECISIONS_CHOLESKY).unwrap().1[0] = f32::INFINITY;
    check(&meta, &t, "`precisions_cholesky`");
    let mut t = tensor_map(&g);
    t.remove(GMM_PRECISIONS_CHOLESKY);
    check(&meta, &t, "`precisions_cholesky` is missing");
    let mut t = tensor_map(&g);
    t.get_mut(GMM_LOG_WEIGHTS).unwrap().0 = vec![3];
    check(&meta, &t, "`log_weights` has shape");
    let mut t = tensor_map(&g);
    t.get_mut(GMM_PROJECTION).unwrap().0 = vec![3, 2];
    check(&meta, &t, "`projection` has shape");
    let mut t = tensor_map(&g);
    t.insert("extra".into(), (vec![1], vec![0.0]));
    check(&meta, &t, "`extra`");
    let mut t = tensor_map(&g);
    t.get_mut(GMM_PRECISIONS_CHOLESKY).unwrap().1[2] = 0.5; // below the diagonal
    check(&meta, &t, "upper-triangular");
    let mut t = tensor_map(&g);
    t.get_mut(GMM_LOG_WEIGHTS).unwrap().1[0] = 0.0;
    check(&meta, &t, "`log_weights`");
    let t = tensor_map(&g);
    let mut m = meta.clone();
    m.as_object_mut().unwrap().remove("components");
    check(&m, &t, "components");
    let mut m = meta.clone();
    m["score"]["std"] = 0.0.into();
    check(&m, &t, "score.std");
    let mut m = meta.clone();
    m["components"] = 3.into();
    check(&m, &t, "`means` has shape");
    let mut m = meta.clone();
    m["covariance"] = "tied".into();
    check(&m, &t, "tied");
    let mut m = meta.clone();
    m["projection"] = false.into();
    check(&m, &t, "channels");
}

#[test]
fn thread_count_does_not_change_the_fit() {
    let samples = gaussian_samples(21, 700, &[(1.0, vec![0.0; 5]), (0.5, vec![3.0; 5])]);
    let maps = samples_as_maps(&samples);
    for covariance in [Covariance::Full, Covariance::Diag] {
        let opts = GmmOptions {
            components: 3,
            covariance,
            pool_kernel: 1,
            pool_stride: 1,
            ..Default::default()
        };
        let fit = || fit_gmm(&maps, &opts, &|_, _| {}).unwrap();
        crate::scorer::assert_fit_independent_of_thread_count(fit);
    }
}
