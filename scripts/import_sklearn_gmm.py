#!/usr/bin/env python3
"""Turns a scikit-learn GaussianMixture into a fomo-ad GMM scorer artifact.

The mixture must model fomo-ad's cell vectors: backbone features average-pooled with a
`--pool-kernel` x `--pool-kernel` window, stride `--pool-stride`, VALID padding (defaults 4 / 2,
Edge Impulse's grid), then optionally multiplied by a random projection matrix
(`--projection`, [dim, channels], e.g. GaussianRandomProjection.components_).

Model source, one of:
  --model FILE      a fitted GaussianMixture saved with joblib (.joblib) or pickle (.pkl/.pickle)
  --fit CELLS.npy   fit one here on pooled (and projected, if --projection) cells [n, dim] with
                    --components / --covariance / --seed (sklearn defaults otherwise)

Score mode (`--score-mode`):
  standardized (default)  |loglik - mean| / std over training cells (Edge Impulse). The constants
                          come from --score-mean/--score-std (e.g. a StandardScaler's mean_[0] and
                          scale_[0]), else from --train-cells (pooled, NOT yet projected cells
                          [n, channels]), else from the --fit cells.
  nll                     -loglik

covariance_type 'full' and 'diag' are stored as they are; 'tied' is stored as full and
'spherical' as diag (the same density).
"""

import argparse
import pickle
import sys

import numpy as np

from fomo_ad_artifact import add_common_arguments, artifact_metadata, write_safetensors


def load_model(path):
    if path.endswith(".joblib"):
        import joblib

        return joblib.load(path)
    with open(path, "rb") as f:
        return pickle.load(f)


def load_projection(path):
    if path.endswith(".npy"):
        matrix = np.load(path)
    else:  # a fitted sklearn random projection
        components = load_model(path).components_
        matrix = components.toarray() if hasattr(components, "toarray") else np.asarray(components)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        sys.exit(f"{path}: projection must be [dim, channels], got shape {matrix.shape}")
    return matrix


def mixture_tensors(gmm):
    """means, precisions_cholesky, log_weights and our covariance name, from a fitted mixture."""
    kind = gmm.covariance_type
    means = np.asarray(gmm.means_, dtype=np.float64)
    k, d = means.shape
    prec = np.asarray(gmm.precisions_cholesky_, dtype=np.float64)
    if kind == "full":
        covariance = "full"
    elif kind == "tied":
        covariance, prec = "full", np.broadcast_to(prec, (k, d, d))
    elif kind == "diag":
        covariance = "diag"
    elif kind == "spherical":
        covariance, prec = "diag", np.repeat(prec[:, None], d, axis=1)
    else:
        sys.exit(f"unsupported covariance_type {kind!r}")
    return covariance, means, np.array(prec), np.log(np.asarray(gmm.weights_, dtype=np.float64))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="fitted GaussianMixture (.joblib or pickle)")
    source.add_argument("--fit", help="cells [n, dim] (.npy) to fit a GaussianMixture on")
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--covariance", choices=["full", "diag"], default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--projection", help="[dim, channels] .npy, or a fitted sklearn random projection")
    parser.add_argument("--channels", type=int, help="feature channels (checked; needed with neither projection)")
    parser.add_argument("--pool-kernel", type=int, default=4)
    parser.add_argument("--pool-stride", type=int, default=2)
    parser.add_argument("--score-mode", choices=["standardized", "nll"], default="standardized")
    parser.add_argument("--score-mean", type=float)
    parser.add_argument("--score-std", type=float)
    parser.add_argument("--train-cells", help="pooled training cells [n, channels] (.npy), before projection")
    add_common_arguments(parser)
    args = parser.parse_args(argv)

    if args.pool_kernel < 1 or args.pool_stride < 1:
        sys.exit("--pool-kernel and --pool-stride must be >= 1")
    projection = load_projection(args.projection) if args.projection else None

    fit_cells = None
    if args.model:
        gmm = load_model(args.model)
        if not hasattr(gmm, "precisions_cholesky_"):
            sys.exit(f"{args.model}: not a fitted sklearn GaussianMixture")
    else:
        from sklearn.mixture import GaussianMixture

        fit_cells = np.asarray(np.load(args.fit), dtype=np.float64)
        if fit_cells.ndim != 2:
            sys.exit(f"{args.fit}: cells must be [n, dim], got shape {fit_cells.shape}")
        gmm = GaussianMixture(
            n_components=args.components, covariance_type=args.covariance, random_state=args.seed
        ).fit(fit_cells)

    covariance, means, prec, log_weights = mixture_tensors(gmm)
    k, dim = means.shape
    if projection is not None:
        if projection.shape[0] != dim:
            sys.exit(f"projection has {projection.shape[0]} rows but the mixture has {dim} dimensions")
        channels = projection.shape[1]
    else:
        channels = dim
    if args.channels is not None and args.channels != channels:
        sys.exit(f"--channels {args.channels} disagrees with the model's {channels}")

    if args.score_mode == "nll":
        score = {"mode": "nll"}
    else:
        if (args.score_mean is None) != (args.score_std is None):
            sys.exit("give both --score-mean and --score-std, or neither")
        if args.score_mean is not None:
            mean, std = args.score_mean, args.score_std
        else:
            if args.train_cells:
                cells = np.asarray(np.load(args.train_cells), dtype=np.float64)
                if cells.ndim != 2 or cells.shape[1] != channels:
                    sys.exit(f"{args.train_cells}: expected [n, {channels}] pooled cells, got {cells.shape}")
                if projection is not None:
                    cells = cells @ projection.T
            elif fit_cells is not None:
                cells = fit_cells
            else:
                sys.exit("standardized scores need --score-mean/--score-std or --train-cells (or use --score-mode nll)")
            logliks = gmm.score_samples(cells)
            mean, std = float(np.mean(logliks)), float(np.std(logliks))
            if std == 0.0:
                std = 1.0  # StandardScaler's convention
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            sys.exit(f"score mean/std must be finite with std > 0, got {mean} / {std}")
        score = {"mode": "standardized", "mean": mean, "std": std}

    config = {
        "pool_kernel": args.pool_kernel,
        "pool_stride": args.pool_stride,
        "channels": int(channels),
        "projection": projection is not None,
        "covariance": covariance,
        "components": int(k),
        "dim": int(dim),
        "score": score,
    }
    tensors = {"means": means, "precisions_cholesky": prec, "log_weights": log_weights}
    if projection is not None:
        tensors["projection"] = projection
    def grid_of(h, w):
        return ((h - args.pool_kernel) // args.pool_stride + 1 if h >= args.pool_kernel else 0,
                (w - args.pool_kernel) // args.pool_stride + 1 if w >= args.pool_kernel else 0)

    metadata = artifact_metadata(args, "gmm", config, channels, grid_of, "fomo-ad import_sklearn_gmm.py")
    write_safetensors(args.out, tensors, metadata)
    print(f"wrote {args.out}: GMM, {k} {covariance} components in {dim} dimensions")


if __name__ == "__main__":
    main()
