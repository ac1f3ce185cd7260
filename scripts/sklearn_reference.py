#!/usr/bin/env python3
"""scikit-learn reference data for fomo-ad's GMM tests (tests/tests/scorer_sklearn.rs and
scorer_importers.rs run this; it needs `pip install -r scripts/requirements.txt`).

  agreement OUT.json
      Fits sklearn.mixture.GaussianMixture (full and diag) on seeded data and writes, per model,
      the fitted parameters, the training data, and score_samples of test points.
  gmm-pipeline --features F.npy --workdir DIR [--pool-kernel 4 --pool-stride 2
               --projection-dim P --covariance full --components 2]
      Plays Edge Impulse's pipeline on feature maps [N, C, H, W]: VALID average pooling, optional
      GaussianRandomProjection, GaussianMixture, StandardScaler on the training log-likelihoods.
      Writes DIR/model.pkl, DIR/projection.pkl (if P > 0), DIR/cells.npy (pooled cells before the
      projection) and DIR/expected.json (per image: cell scores and log-likelihoods).
"""

import argparse
import json
import os
import pickle

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.random_projection import GaussianRandomProjection


def f32_exact(a):
    """Rounds to float32 and back, so Rust sees exactly the values sklearn used."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def agreement(out):
    rng = np.random.default_rng(1234)
    d = 4
    centres = [np.array([0.0, 0.0, 0.0, 0.0]), np.array([8.0, 1.0, -3.0, 2.0]), np.array([-6.0, 7.0, 4.0, -5.0])]
    xs = []
    for i, c in enumerate(centres):
        a = rng.normal(size=(d, d)) * (0.5 + 0.3 * i)
        xs.append(rng.normal(size=(300, d)) @ a + c)
    x = f32_exact(np.concatenate(xs))
    points = f32_exact(np.concatenate([x[::37], rng.normal(scale=6.0, size=(12, d)), [[40.0, -30.0, 25.0, 60.0]]]))
    models = []
    for covariance in ["full", "diag"]:
        gmm = GaussianMixture(n_components=3, covariance_type=covariance, random_state=0).fit(x)
        models.append(
            {
                "covariance": covariance,
                "components": 3,
                "dim": d,
                "means": gmm.means_.ravel().tolist(),
                "precisions_cholesky": gmm.precisions_cholesky_.ravel().tolist(),
                "weights": gmm.weights_.tolist(),
                "points": points.ravel().tolist(),
                "score_samples": gmm.score_samples(points).tolist(),
                "train_mean_score": float(gmm.score(x)),
                "converged": bool(gmm.converged_),
            }
        )
    with open(out, "w") as f:
        json.dump({"train": x.ravel().tolist(), "dim": d, "models": models}, f)


def pool_valid(features, kernel, stride):
    n, c, h, w = features.shape
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for y in range(oh):
        for x in range(ow):
            window = features[:, :, y * stride : y * stride + kernel, x * stride : x * stride + kernel]
            out[:, :, y, x] = window.mean(axis=(2, 3))
    return out


def gmm_pipeline(args):
    features = np.load(args.features).astype(np.float64)
    pooled = pool_valid(features, args.pool_kernel, args.pool_stride)
    n, c, oh, ow = pooled.shape
    cells = pooled.transpose(0, 2, 3, 1).reshape(-1, c)  # image-major, row-major cells
    np.save(os.path.join(args.workdir, "cells.npy"), cells)
    space = cells
    if args.projection_dim > 0:
        projection = GaussianRandomProjection(n_components=args.projection_dim, random_state=0).fit(cells)
        with open(os.path.join(args.workdir, "projection.pkl"), "wb") as f:
            pickle.dump(projection, f)
        space = projection.transform(cells)
    gmm = GaussianMixture(n_components=args.components, covariance_type=args.covariance, random_state=0).fit(space)
    with open(os.path.join(args.workdir, "model.pkl"), "wb") as f:
        pickle.dump(gmm, f)
    logliks = gmm.score_samples(space)
    mean, std = logliks.mean(), logliks.std()
    scores = np.abs((logliks - mean) / std)
    per_image = oh * ow
    expected = {
        "grid": [oh, ow],
        "log_likelihoods": logliks.reshape(n, per_image).tolist(),
        "scores": scores.reshape(n, per_image).tolist(),
    }
    with open(os.path.join(args.workdir, "expected.json"), "w") as f:
        json.dump(expected, f)


def main():
    parser = argparse.ArgumentParser(description="scikit-learn reference data for fomo-ad tests")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("agreement")
    a.add_argument("out")
    p = sub.add_parser("gmm-pipeline")
    p.add_argument("--features", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--pool-kernel", type=int, default=4)
    p.add_argument("--pool-stride", type=int, default=2)
    p.add_argument("--projection-dim", type=int, default=0)
    p.add_argument("--covariance", choices=["full", "diag"], default="full")
    p.add_argument("--components", type=int, default=2)
    args = parser.parse_args()
    if args.command == "agreement":
        agreement(args.out)
    else:
        gmm_pipeline(args)


if __name__ == "__main__":
    main()
