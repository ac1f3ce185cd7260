#!/usr/bin/env python3
"""Times a backbone ONNX with onnxruntime the way a user would run it on one core.

One thread (intra- and inter-op), sequential execution, every graph optimisation, batch 1.
Called by `fomo-ad bench` (which passes the frame it times everything else on), or alone:

    python3 scripts/bench_onnxruntime.py models/mobilenetv2_1.0_cut8.onnx --frames 200

Prints one JSON object: per-frame median, p10, p90, min and max in milliseconds of
`session.run` (Python's call overhead included, as a user pays it), the onnxruntime version and
the session settings. Exits 2 with a one-line reason when onnxruntime or numpy is missing.
"""

import argparse
import json
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="backbone ONNX file")
    parser.add_argument("--frames", type=int, default=200, help="timed runs (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs first (default 20)")
    parser.add_argument(
        "--input",
        help="raw little-endian float32 input in the graph's own layout "
        "(default: seeded uniform 0..1 values)",
    )
    parser.add_argument("--output", help="write the first output here as raw float32")
    args = parser.parse_args()
    if args.frames < 1 or args.warmup < 0:
        sys.exit("--frames must be at least 1 and --warmup at least 0")

    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(f"{e} (pip install -r scripts/requirements.txt)", file=sys.stderr)
        sys.exit(2)

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        args.model, sess_options=options, providers=["CPUExecutionProvider"]
    )
    source = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in source.shape]
    if args.input:
        data = np.fromfile(args.input, dtype="<f4")
        if data.size != int(np.prod(shape)):
            sys.exit(f"{args.input}: {data.size} floats, the input {source.name} takes {shape}")
        data = data.reshape(shape)
    else:
        data = np.random.default_rng(0).random(shape, dtype=np.float32)
    feed = {source.name: data}

    for _ in range(args.warmup):
        session.run(None, feed)
    samples = []
    for _ in range(args.frames):
        start = time.perf_counter_ns()
        outputs = session.run(None, feed)
        samples.append((time.perf_counter_ns() - start) * 1e-6)
    if args.output:
        np.asarray(outputs[0], dtype="<f4").tofile(args.output)

    ms = np.asarray(samples)
    print(
        json.dumps(
            {
                "median_ms": float(np.median(ms)),
                "p10_ms": float(np.percentile(ms, 10)),
                "p90_ms": float(np.percentile(ms, 90)),
                "min_ms": float(ms.min()),
                "max_ms": float(ms.max()),
                "frames": len(samples),
                "onnxruntime": ort.__version__,
                "input": {"name": source.name, "shape": shape},
                "session": "intra_op_num_threads=1 inter_op_num_threads=1 "
                "ORT_SEQUENTIAL ORT_ENABLE_ALL CPUExecutionProvider",
            }
        )
    )


if __name__ == "__main__":
    main()
