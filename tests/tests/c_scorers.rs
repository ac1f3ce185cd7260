//! Differential test of the whole generated C library (backbone + scorer) through its public
//! API: cell scores must match the reference (executor + `Scorer::score`) on several images, for
//! PatchCore and GMM (full, diagonal, projected, both score modes) on both shipped backbones.

mod c_common;

use c_common::*;
use fomo_ad::codegen::{self, c, program::ScorerSpec};
use fomo_ad::frontend::{load_backbone, BackboneOptions};
use fomo_ad::pipeline::feature_graph;
use fomo_ad::scorer::{
    fit_gmm, fit_patchcore, Covariance, GmmOptions, GmmScoreMode, PatchCoreOptions, Scorer,
};

const TRAIN_IMAGES: usize = 12;
const TEST_IMAGES: u64 = 4;

enum Kind {
    PatchCore {
        layers: usize,
        neighbors: usize,
    },
    Gmm {
        covariance: Covariance,
        projection: Option<usize>,
        components: usize,
        mode: GmmScoreMode,
    },
}

fn check(model: &str, kind: Kind) -> f32 {
    let label = match &kind {
        Kind::PatchCore { layers, neighbors } => format!("patchcore layers={layers} k={neighbors}"),
        Kind::Gmm {
            covariance,
            projection,
            components,
            mode,
        } => {
            format!("gmm {covariance:?} K={components} projection={projection:?} {mode:?}")
        }
    };
    let backbone = load_backbone(&repo_path(model), &BackboneOptions::default())
        .expect("shipped backbones load");
    let layers = match kind {
        Kind::PatchCore { layers, .. } => layers,
        Kind::Gmm { .. } => 1,
    };
    let graph = feature_graph(&backbone, layers)
        .expect("the shipped backbones have 3 taps")
        .graph;
    let input = graph.input_shape();
    let (scale, offset) = (vec![1.0 / 255.0; input.c], vec![0.0; input.c]);
    let features: Vec<_> = (0..TRAIN_IMAGES as u64)
        .map(|seed| {
            let pixels = synthetic_image(input.w, input.h, input.c, seed, false);
            fomo_ad::exec::run(&graph, &scaled_input(input, &pixels, &scale, &offset))
        })
        .collect();
    let scorer: Box<dyn Scorer> = match kind {
        Kind::PatchCore { neighbors, .. } => Box::new(
            fit_patchcore(
                &features,
                &PatchCoreOptions {
                    neighbors,
                    sampling_ratio: 0.1,
                    ..PatchCoreOptions::default()
                },
                &|_, _| {},
            )
            .expect("PatchCore fits"),
        ),
        Kind::Gmm {
            covariance,
            projection,
            components,
            mode,
        } => Box::new(
            fit_gmm(
                &features,
                &GmmOptions {
                    components,
                    covariance,
                    projection_dim: projection,
                    score_mode: mode,
                    max_iter: 30,
                    ..GmmOptions::default()
                },
                &|_, _| {},
            )
            .expect("the GMM fits"),
        ),
    };
    // Reference scores of the test images; the threshold sits between them so both verdicts occur.
    let test_pixels: Vec<Vec<u8>> = (0..TEST_IMAGES)
        .map(|i| synthetic_image(input.w, input.h, input.c, 100 + i, i % 2 == 1))
        .collect();
    let reference: Vec<Vec<f32>> = test_pixels
        .iter()
        .map(|p| {
            scorer.score(&fomo_ad::exec::run(
                &graph,
                &scaled_input(input, p, &scale, &offset),
            ))
        })
        .collect();
    let mut maxima: Vec<f32> = reference
        .iter()
        .map(|c| c.iter().copied().fold(f32::MIN, f32::max))
        .collect();
    maxima.sort_by(f32::total_cmp);
    let threshold = 0.5 * (maxima[1] + maxima[2]);

    let spec = ScorerSpec::from_scorer(scorer.as_ref()).expect("fitted scorers convert");
    let identity = fomo_ad::codegen::program::Identity {
        name: model.into(),
        sha256: backbone.sha256.clone(),
    };
    let program = lower(&source(&graph, identity, spec, threshold));
    let files = c::emit(&program, c::DEFAULT_NAME).expect("the C emitter accepts the program");
    let dir = tempfile::tempdir().expect("a temp dir");
    write_files(dir.path(), &files);
    std::fs::write(dir.path().join("harness.c"), RUN_HARNESS).expect("the temp dir is writable");
    let exe = compile(
        dir.path(),
        &["harness.c", "fomo_ad.c", "fomo_ad_weights.c"],
        &[],
        "harness",
    );
    let mut worst = 0.0f32;
    for (pixels, expected) in test_pixels.iter().zip(&reference) {
        let out = parse_run_output(&run(&exe, pixels), program.grid.cells());
        let (err, scale) = relative_error(&out.cells, expected);
        assert!(scale > 0.0, "{model}: all reference scores are zero");
        worst = worst.max(err);
        let max = expected.iter().copied().fold(f32::MIN, f32::max);
        let mean = expected.iter().sum::<f32>() / expected.len() as f32;
        assert!(
            (out.max_score - max).abs() <= 1e-4 * scale,
            "{model}: max_score {} vs {max}",
            out.max_score
        );
        assert!(
            (out.mean_score - mean).abs() <= 1e-4 * scale,
            "{model}: mean_score {} vs {mean}",
            out.mean_score
        );
        assert_eq!(
            out.anomalous,
            max >= threshold,
            "{model}: verdict (max {max}, threshold {threshold})"
        );
    }
    let scorer_macs = codegen::c::scorer_macs(&program);
    println!(
        "{model} {:?}: max |cell error| / max |score| = {worst:.3e} over {TEST_IMAGES} images ({} cells, scorer {scorer_macs} MACs, arena {} / lower bound {} bytes)",
        label,
        program.grid.cells(),
        program.arena.bytes,
        program.arena.lower_bound_bytes
    );
    assert!(
        worst <= 1e-4,
        "{model}: relative error {worst:e} exceeds 1e-4"
    );
    worst
}

#[test]
fn patchcore_in_c_matches_the_reference() {
    check(
        SHIPPED[0],
        Kind::PatchCore {
            layers: 2,
            neighbors: 3,
        },
    );
    check(
        SHIPPED[1],
        Kind::PatchCore {
            layers: 1,
            neighbors: 1,
        },
    );
}

#[test]
fn full_covariance_gmm_in_c_matches_the_reference() {
    check(
        SHIPPED[0],
        Kind::Gmm {
            covariance: Covariance::Full,
            projection: None,
            components: 2,
            mode: GmmScoreMode::Standardized,
        },
    );
    check(
        SHIPPED[1],
        Kind::Gmm {
            covariance: Covariance::Full,
            projection: Some(48),
            components: 3,
            mode: GmmScoreMode::Nll,
        },
    );
}

#[test]
fn diagonal_gmm_in_c_matches_the_reference() {
    check(
        SHIPPED[0],
        Kind::Gmm {
            covariance: Covariance::Diag,
            projection: Some(24),
            components: 3,
            mode: GmmScoreMode::Nll,
        },
    );
    check(
        SHIPPED[1],
        Kind::Gmm {
            covariance: Covariance::Diag,
            projection: None,
            components: 2,
            mode: GmmScoreMode::Standardized,
        },
    );
}
