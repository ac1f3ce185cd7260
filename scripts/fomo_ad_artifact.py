"""Writes and reads fomo-ad scorer artifacts: safetensors files holding the scorer's f32 tensors
and a metadata key `fomo_ad` whose value is a JSON string:

    {"format_version": 1, "scorer": "gmm" | "patchcore", "scorer_config": {...},
     "backbone_sha256": ..., "input_width": ..., "input_height": ..., "threshold": ...}

`scorer_config` and the tensors are exactly what the Rust `Scorer::metadata()` / `tensors()`
produce. The safetensors container is written by hand (8-byte little-endian header length, JSON
header, raw little-endian data) so no extra package is needed. Only numpy is required.
"""

import argparse
import json
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
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--backbone-sha256", help="sha256 of the backbone ONNX file these features come from")
    parser.add_argument("--input-size", help="input image size, WIDTHxHEIGHT or a single side (e.g. 96)")
    parser.add_argument("--threshold", type=float, help="anomaly threshold on cell scores")


def artifact_metadata(args, scorer, scorer_config):
    info = {"format_version": FORMAT_VERSION, "scorer": scorer, "scorer_config": scorer_config}
    if args.backbone_sha256:
        sha = args.backbone_sha256.lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise SystemExit("--backbone-sha256 must be 64 hex digits")
        info["backbone_sha256"] = sha
    if args.input_size:
        parts = args.input_size.lower().split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise SystemExit(f"--input-size: cannot parse {args.input_size!r}") from None
        if len(sizes) == 1:
            sizes = sizes * 2
        if len(sizes) != 2 or min(sizes) <= 0:
            raise SystemExit(f"--input-size: expected WIDTHxHEIGHT, got {args.input_size!r}")
        info["input_width"], info["input_height"] = sizes
    if args.threshold is not None:
        info["threshold"] = args.threshold
    return {"fomo_ad": json.dumps(info, separators=(",", ":"))}
