#!/usr/bin/env python3
"""Turns a PatchCore memory bank (e.g. from anomalib) into a fomo-ad scorer artifact.

The memory bank must hold feature vectors of the SAME backbone features fomo-ad computes (our
MobileNetV2 cut, e.g. 192 channels for width 1.0), pooled the way fomo-ad pools them
(`AvgPool2d(pool_size, 1, pool_size // 2)`, count_include_pad=True, which is anomalib's
`feature_pooler`). A bank built on anomalib's default WideResNet50 features cannot be used with
our backbone; fomo-ad checks the channel count when it loads the artifact.

Getting the bank out of anomalib (needs torch, which this script does not):

    from anomalib.models import Patchcore
    model = Patchcore.load_from_checkpoint("model.ckpt")
    np.save("bank.npy", model.model.memory_bank.cpu().numpy())      # [n, dim] float32
    # or without anomalib: torch.load("model.ckpt")["state_dict"]["model.memory_bank"]

anomalib scores a patch by its distance to the single nearest bank entry (`--neighbors 1`); its
`num_neighbors` (default 9) only feeds the optional image-score re-weighting, not patch scores.

Usage:
    import_anomalib_patchcore.py --memory-bank bank.npy --out model.safetensors \
        --backbone-sha256 HEX --threshold T [--input-size 96] \
        [--pool-size 3] [--neighbors 1] [--sampling-ratio 0.1]   (see --help for the rest)
"""

import argparse
import sys

import numpy as np

from fomo_ad_artifact import add_common_arguments, artifact_metadata, write_safetensors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory-bank", required=True, help=".npy file, [n, dim] (or [n, dim, 1, 1])")
    parser.add_argument("--pool-size", type=int, default=3, help="odd average-pooling window (1 = none)")
    parser.add_argument("--neighbors", type=int, default=1, help="nearest entries a cell score averages")
    parser.add_argument(
        "--sampling-ratio", type=float, default=0.1, help="coreset fraction the bank was built with (informational)"
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)

    bank = np.load(args.memory_bank)
    if bank.ndim == 4 and bank.shape[2:] == (1, 1):
        bank = bank[:, :, 0, 0]
    if bank.ndim != 2 or bank.shape[0] == 0 or bank.shape[1] == 0:
        sys.exit(f"{args.memory_bank}: memory bank must be [n, dim], got shape {bank.shape}")
    if not np.all(np.isfinite(bank)):
        sys.exit(f"{args.memory_bank}: memory bank holds NaN or infinity")
    if args.pool_size < 1 or args.pool_size % 2 == 0:
        sys.exit(f"--pool-size must be odd and >= 1, got {args.pool_size}")
    if not 1 <= args.neighbors <= bank.shape[0]:
        sys.exit(f"--neighbors must be in 1..={bank.shape[0]}, got {args.neighbors}")
    if not 0.0 < args.sampling_ratio <= 1.0:
        sys.exit(f"--sampling-ratio must be in (0, 1], got {args.sampling_ratio}")

    config = {
        "pool_size": args.pool_size,
        "neighbors": args.neighbors,
        "sampling_ratio": args.sampling_ratio,
        "dim": int(bank.shape[1]),
        "memory_len": int(bank.shape[0]),
        "distance": "l2",
        "pooling": "avg_same_count_include_pad",
    }
    metadata = artifact_metadata(
        args, "patchcore", config, bank.shape[1], lambda h, w: (h, w), "fomo-ad import_anomalib_patchcore.py"
    )
    write_safetensors(args.out, {"memory_bank": bank.astype(np.float32)}, metadata)
    print(f"wrote {args.out}: PatchCore, {bank.shape[0]} x {bank.shape[1]} memory bank")


if __name__ == "__main__":
    main()
