"""Writes and reads fomo-ad model artifacts (docs/artifact.md): a safetensors file holding the
scorer's f32 tensors and a metadata key `fomo_ad` whose value is the JSON `ModelMeta` that
`fomo-ad` loads (format_version, generator, scorer, scorer_config, input, feature_grid, grid,
backbone, threshold, training).

`scorer_config` and the tensors are exactly what the Rust `Scorer::metadata()` / `tensors()`
produce. The safetensors container is written by hand (8-byte little-endian header length, JSON
header, raw little-endian data) so no package beyond numpy is needed.
"""

import argparse
import json
import math
import struct

import numpy as np

FORMAT_VERSION = 1


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> array (stored as little-endian f32); metadata: dict str -> str."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        if not np.all(np.isfinite(array)):
            raise ValueError(f"tensor `{name}` holds NaN or infinity")
        data = array.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as the format recommends
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """Returns (tensors dict name -> float32 array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + length :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"tensor `{name}` has dtype {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
    return tensors, metadata


def add_common_arguments(parser: argparse.ArgumentParser):
    g = parser.add_argument_group("artifact (see docs/artifact.md)")
    g.add_argument("--out", required=True, help="output .safetensors file")
    g.add_argument("--backbone-sha256", required=True, help="sha256 of the backbone ONNX file the features come from")
    g.add_argument("--backbone-name", default="backbone.onnx", help="backbone file name (informational)")
    g.add_argument("--cut", help="the backbone --cut node, if one was used")
    g.add_argument("--feature-nodes", default="", help="comma-separated feature nodes, deepest first")
    g.add_argument("--layers", type=int, default=1, help="feature maps concatenated (1-3)")
    g.add_argument("--input-size", default="96", help="WIDTHxHEIGHT or one side (default 96)")
    g.add_argument("--input-channels", type=int, choices=[1, 3], default=3, help="1 = luma, 3 = RGB")
    g.add_argument("--scaling", choices=["unit", "byte", "symmetric", "imagenet"], default="unit")
    g.add_argument("--resize", choices=["squash", "crop"], default="squash")
    g.add_argument("--stride", type=int, default=8, help="feature grid stride of the backbone (default 8)")
    g.add_argument("--threshold", type=float, required=True, help="anomaly threshold on cell scores")
    g.add_argument("--training-images", type=int, default=0, help="training images (informational; 0 = unknown)")
    g.add_argument("--mean-image-score", type=float, default=0.0, help="informational")
    g.add_argument("--max-image-score", type=float, help="informational; default: the threshold")


def parse_size(text):
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise SystemExit(f"--input-size: cannot parse {text!r}") from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise SystemExit(f"--input-size: expected WIDTHxHEIGHT, got {text!r}")
    return sizes


def artifact_metadata(args, scorer, scorer_config, channels, grid_of, generator):
    """The safetensors `__metadata__`: {"fomo_ad": JSON ModelMeta}. `grid_of(h, w)` gives the
    scorer's cell grid (rows, cols) on an h x w feature grid."""
    sha = args.backbone_sha256.lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise SystemExit("--backbone-sha256 must be 64 hex digits")
    width, height = parse_size(args.input_size)
    if width % args.stride or height % args.stride:
        raise SystemExit(f"--input-size {width}x{height} is not a multiple of the stride {args.stride}")
    if not 1 <= args.layers <= 3:
        raise SystemExit("--layers must be 1 to 3")
    fh, fw = height // args.stride, width // args.stride
    rows, cols = grid_of(fh, fw)
    if rows <= 0 or cols <= 0:
        raise SystemExit(f"the scorer has no cells on a {fh}x{fw} feature grid")
    if not math.isfinite(args.threshold):
        raise SystemExit("--threshold must be finite")
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": generator,
        "scorer": scorer,
        "scorer_config": scorer_config,
        "input": {
            "width": width,
            "height": height,
            "channels": args.input_channels,
            "scaling": args.scaling,
            "resize": args.resize,
        },
        "feature_grid": [fh, fw, int(channels)],
        "grid": [rows, cols],
        "backbone": {
            "sha256": sha,
            "name": args.backbone_name,
            "cut": args.cut,
            "feature_nodes": [n for n in args.feature_nodes.split(",") if n],
            "layers": args.layers,
        },
        "threshold": args.threshold,
        "training": {
            "images": args.training_images,
            "seed": 0,
            "mean_image_score": args.mean_image_score,
            "max_image_score": args.threshold if args.max_image_score is None else args.max_image_score,
        },
    }
    return {"fomo_ad": json.dumps(meta, separators=(",", ":"))}
