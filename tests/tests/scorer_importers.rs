//! The Python importers write artifacts that fomo-ad's loader (`artifact::load`, which rebuilds the
//! scorer with `scorer::from_parts`) accepts and that score like the models they came from.

mod scorer_support;

use fomo_ad::ir::{Shape, Tensor};
use fomo_ad::scorer::{PatchCore, Scorer, ScorerKind};
use scorer_support::{pseudo_random, require_python_with_sklearn, run_script, write_npy};

const SHA: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn feature_maps(count: usize, shape: Shape, seed: u64) -> Vec<Tensor> {
    (0..count)
        .map(|i| {
            let noise = pseudo_random(seed + i as u64, shape.len());
            // Two kinds of image so the mixture has structure to find.
            let data = noise
                .iter()
                .enumerate()
                .map(|(j, v)| v + if (i + j / 36) % 2 == 0 { 1.0 } else { 0.0 })
                .collect();
            Tensor::from_vec(shape, data)
        })
        .collect()
}

#[test]
fn sklearn_gmm_importer_round_trips_edge_impulse_pipeline() {
    require_python_with_sklearn();
    let shape = Shape::new(6, 8, 8);
    let maps = feature_maps(40, shape, 3);
    for (projection_dim, covariance) in [(4, "full"), (0, "diag"), (0, "full")] {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().to_str().unwrap();
        let features = dir.path().join("features.npy");
        let all: Vec<f32> = maps.iter().flat_map(|t| t.data.clone()).collect();
        write_npy(&features, &[maps.len(), shape.c, shape.h, shape.w], &all);
        let projection_arg = projection_dim.to_string();
        run_script(
            "sklearn_reference.py",
            &[
                "gmm-pipeline",
                "--features",
                features.to_str().unwrap(),
                "--workdir",
                work,
                "--projection-dim",
                &projection_arg,
                "--covariance",
                covariance,
                "--components",
                "2",
            ],
        );
        let out = dir.path().join("gmm.safetensors");
        let model = format!("{work}/model.pkl");
        let cells = format!("{work}/cells.npy");
        let projection = format!("{work}/projection.pkl");
        let mut args = vec![
            "--model",
            &model,
            "--train-cells",
            &cells,
            "--out",
            out.to_str().unwrap(),
            "--input-size",
            "64",
            "--threshold",
            "3.5",
            "--backbone-sha256",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ];
        if projection_dim > 0 {
            args.extend(["--projection", &projection]);
        }
        run_script("import_sklearn_gmm.py", &args);

        // fomo-ad's own loader parses the file and rebuilds the scorer with `from_parts`.
        let model = fomo_ad::artifact::load(&out).unwrap();
        assert_eq!(model.meta.scorer, ScorerKind::Gmm);
        assert_eq!((model.meta.input.width, model.meta.input.height), (64, 64));
        assert_eq!(
            (model.meta.feature_grid, model.meta.grid),
            ([8, 8, 6], [3, 3])
        );
        assert_eq!(model.meta.threshold, 3.5);
        let config = &model.meta.scorer_config;
        let scorer = model.scorer;
        // The importer wrote exactly what our own metadata()/tensors() would.
        assert_eq!(&scorer.metadata(), config);
        assert_eq!(scorer.channels(), shape.c);
        assert_eq!(scorer.grid(shape), (3, 3));

        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("expected.json")).unwrap(),
        )
        .unwrap();
        for (map, want) in maps.iter().zip(expected["scores"].as_array().unwrap()) {
            let got = scorer.score(map);
            let want: Vec<f64> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() < 1e-3 + 1e-4 * w.abs(),
                    "{covariance}, projection {projection_dim}: ours {got:?}, sklearn pipeline {want:?}"
                );
            }
        }
    }
}

#[test]
fn patchcore_importer_writes_a_loadable_memory_bank() {
    // Only numpy is needed here, but CI has the full requirements.
    require_python_with_sklearn();
    let dir = tempfile::tempdir().unwrap();
    let (n, dim) = (50, 12);
    let bank = pseudo_random(17, n * dim);
    let bank_path = dir.path().join("bank.npy");
    write_npy(&bank_path, &[n, dim], &bank);
    let out = dir.path().join("patchcore.safetensors");
    run_script(
        "import_anomalib_patchcore.py",
        &[
            "--memory-bank",
            bank_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--neighbors",
            "3",
            "--sampling-ratio",
            "0.25",
            "--input-size",
            "48x32",
            "--backbone-sha256",
            SHA,
            "--threshold",
            "2",
        ],
    );
    let model = fomo_ad::artifact::load(&out).unwrap();
    assert_eq!(model.meta.scorer, ScorerKind::PatchCore);
    assert_eq!(
        (model.meta.feature_grid, model.meta.grid),
        ([4, 6, dim], [4, 6])
    );
    assert_eq!(model.meta.backbone.sha256, SHA);
    let config = &model.meta.scorer_config;
    let scorer = model.scorer;
    let direct = PatchCore {
        pool_size: 3,
        neighbors: 3,
        memory_bank: bank.clone(),
        dim,
        sampling_ratio: 0.25,
    };
    assert_eq!(&direct.metadata(), config);

    let features = feature_maps(1, Shape::new(dim, 4, 6), 99).remove(0);
    let scores = scorer.score(&features);
    assert_eq!(scores, direct.score(&features));
    // Independent brute force: 3x3 zero-padded average (divisor 9), mean of the 3 smallest L2
    // distances.
    for y in 0..4usize {
        for x in 0..6usize {
            let mut pooled = vec![0f64; dim];
            for (c, p) in pooled.iter_mut().enumerate() {
                for sy in y.saturating_sub(1)..(y + 2).min(4) {
                    for sx in x.saturating_sub(1)..(x + 2).min(6) {
                        *p += features.at(c, sy, sx) as f64;
                    }
                }
                *p /= 9.0;
            }
            let mut d: Vec<f64> = bank
                .chunks_exact(dim)
                .map(|row| {
                    row.iter()
                        .zip(&pooled)
                        .map(|(a, b)| (*a as f64 - b).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            d.sort_by(f64::total_cmp);
            let want = (d[0] + d[1] + d[2]) / 3.0;
            let got = scores[y * 6 + x] as f64;
            assert!(
                (got - want).abs() < 1e-5 * want.max(1.0),
                "cell ({y},{x}): {got} vs {want}"
            );
        }
    }
}
