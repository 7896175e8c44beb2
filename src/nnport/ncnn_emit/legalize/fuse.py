"""Fusions on the ncnn graph.

- Softplus -> TanH -> BinaryOp mul (with the Softplus input) -> one Mish layer (torch exports
  Mish that way before opset 18);
- Convolution/InnerProduct (+ the 1-D, 3-D, depthwise and deconvolution variants) followed by
  BatchNorm: folded into the weights (all their weight layouts are output-channel major;
  int8 layers, 8=int8_scale_term, keep theirs and the BatchNorm);
- the same layers followed by an activation: the activation goes into 9=activation_type with
  -23310 10=activation_params.  ncnn's fused activations (src/layer/fused_activation.h) are
  only 1 relu, 2 leakyrelu (slope), 3 clip (min, max), 4 sigmoid, 5 mish, 6 hardswish
  (alpha, beta): Swish, GELU, ELU, TanH... stay separate layers;
- a BinaryOp that adds or subtracts a scalar 0, or multiplies or divides by a scalar 1, is
  dropped (MobileOne adds a 0 where a block has no identity branch, which would keep its
  branches apart); only a -0.0 input would read +0.0 with it;
- parallel branches summed (RepVGG, MobileOne, ACNet: a k×k, a 1×1 and a BatchNorm of the same
  input added up): one convolution whose kernel is the sum of the branch kernels, each
  zero-padded to the largest and placed where its taps fall, the BatchNorm as a centre tap
  per channel (structural re-parameterisation, Ding et al. 2021).  2-D Convolution /
  ConvolutionDepthWise with the same input, stride, dilation and groups, output sizes that
  agree, each branch read only by the add; exact but for float rounding of the sum.
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Weight

WEIGHTED = {"Convolution", "ConvolutionDepthWise", "Convolution1D", "ConvolutionDepthWise1D",
            "Convolution3D", "ConvolutionDepthWise3D", "Deconvolution", "DeconvolutionDepthWise",
            "Deconvolution1D", "Deconvolution3D", "DeconvolutionDepthWise1D",
            "DeconvolutionDepthWise3D", "InnerProduct"}
ACTIVATIONS = {"ReLU", "Clip", "Sigmoid", "Mish", "HardSwish"}


def _sole(g: Graph, blob: str, protected: set):
    if blob in protected:
        return None
    cons = g.consumers().get(blob, [])
    return cons[0] if len(cons) == 1 else None


def _fuse_mish(g: Graph, protected: set) -> None:
    for sp in list(g.layers):
        if sp.type != "Softplus" or sp not in g.layers:
            continue
        x = sp.bottoms[0]
        th = _sole(g, sp.tops[0], protected)
        if th is None or th.type != "TanH":
            continue
        mul = _sole(g, th.tops[0], protected)
        if mul is None or mul.type != "BinaryOp" or int(mul.params.get(0, 0)) != 2 or \
                mul.params.get(1, 0) or sorted(mul.bottoms) != sorted([x, th.tops[0]]):
            continue
        g.layers.remove(sp)
        g.layers.remove(th)
        mul.type, mul.bottoms, mul.params, mul.weights = "Mish", [x], {}, []


def _fold_bn(layer, bn) -> None:
    slope, mean, var, bias = (w.data for w in bn.weights)
    eps = float(bn.params.get(1, 0.0))
    scale = slope / np.sqrt(var + eps)
    n = int(layer.params[0])
    bias_key = 1 if layer.type == "InnerProduct" else 5
    W = layer.weights[0].data.reshape(n, -1) * scale.reshape(-1, 1)
    b = layer.weights[1].data if layer.params.get(bias_key) else np.zeros(n, np.float32)
    nb = (b - mean) * scale + bias
    layer.weights[0].data = W.astype(np.float32)
    layer.params[bias_key] = 1
    layer.weights = [layer.weights[0], Weight(nb.astype(np.float32))]


def _fuse_activation(layer, act) -> None:
    if act.type == "ReLU":
        slope = float(act.params.get(0, 0.0))
        layer.params[9] = 1 if slope == 0 else 2
        if slope:
            layer.params[10] = [slope]
    elif act.type == "Clip":
        layer.params[9] = 3
        layer.params[10] = [float(act.params.get(0, -3.402823e38)),
                            float(act.params.get(1, 3.402823e38))]
    elif act.type == "Sigmoid":
        layer.params[9] = 4
    elif act.type == "Mish":
        layer.params[9] = 5
    else:  # HardSwish
        layer.params[9] = 6
        layer.params[10] = [float(act.params.get(0, 0.2)), float(act.params.get(1, 0.5))]


_CONV2D = ("Convolution", "ConvolutionDepthWise")


def _kernel(layer):
    """A 2-D convolution's geometry, or None where branches must not merge (int8, a fused
    activation, a run-time weight, automatic or negative pads, a non-zero pad value)."""
    p = layer.params
    if layer.type not in _CONV2D or p.get(8) or 9 in p or p.get(19) or \
            float(p.get(18, 0.0)) != 0.0 or len(layer.weights) < 1:
        return None
    kw = int(p.get(1, 0))
    kh = int(p.get(11, kw))
    dw = int(p.get(2, 1))
    dh = int(p.get(12, dw))
    sw = int(p.get(3, 1))
    sh = int(p.get(13, sw))
    pl = int(p.get(4, 0))
    pt = int(p.get(14, pl))
    pr = int(p.get(15, pl))
    pb = int(p.get(16, pt))
    if min(pl, pt, pr, pb) < 0:
        return None
    n = int(p[0])
    group = int(p.get(7, 1)) if layer.type == "ConvolutionDepthWise" else 1
    size = layer.weights[0].data.size
    if n <= 0 or kh <= 0 or kw <= 0 or size % (n * kh * kw):
        return None
    return {"k": (kh, kw), "d": (dh, dw), "s": (sh, sw), "b": (pt, pl), "e": (pb, pr),
            "n": n, "group": group, "cin": size // (n * kh * kw) * group}


def _taps(geo) -> tuple:
    """Per axis, how far the output window reaches beyond the padded input: equal for two
    convolutions whose outputs have the same size on every input."""
    return tuple(geo["b"][i] + geo["e"][i] - geo["d"][i] * (geo["k"][i] - 1) for i in range(2))


def _place(big, small):
    """Where ``small``'s kernel lies inside ``big``'s (row, col offsets), or None."""
    if big["s"] != small["s"] or big["group"] != small["group"] or big["n"] != small["n"] or \
            big["cin"] != small["cin"] or _taps(big) != _taps(small):
        return None
    off = []
    for i in range(2):
        d = big["d"][i]
        if small["k"][i] > 1 and small["d"][i] != d:
            return None
        shift = big["b"][i] - small["b"][i]
        if shift < 0 or shift % d or shift // d + small["k"][i] > big["k"][i]:
            return None
        off.append(shift // d)
    return tuple(off)


def _weights(layer, geo):
    n, (kh, kw) = geo["n"], geo["k"]
    W = layer.weights[0].data.astype(np.float32).reshape(n, -1, kh, kw)
    b = layer.weights[1].data.astype(np.float32).reshape(n) if layer.params.get(5) \
        else np.zeros(n, np.float32)
    return W, b


def _identity(geo):
    """The centre tap of a stride-1 convolution that reads each output position's own input
    (row, col), or None."""
    if geo["s"] != (1, 1) or geo["n"] != geo["cin"] or _taps(geo) != (0, 0):
        return None
    tap = []
    for i in range(2):
        if geo["b"][i] % geo["d"][i]:
            return None
        tap.append(geo["b"][i] // geo["d"][i])
    return tuple(tap)


def _merge_branches(g: Graph, protected: set) -> bool:
    """Every BinaryOp add of two branches of the same input -> one convolution (see the module
    docstring), in graph order, so a sum of several branches folds up one add at a time.
    True when it merged any."""
    producer = g.producer()
    consumers = g.consumers()
    gone: set[int] = set()
    merged = False

    def sole(blob):
        return blob not in protected and len(consumers.get(blob, [])) == 1

    def remove(layer):
        gone.add(id(layer))
        for blob in layer.bottoms:
            consumers[blob] = [c for c in consumers.get(blob, []) if c is not layer]

    for add in list(g.layers):
        if id(add) in gone or add.type != "BinaryOp" or len(add.bottoms) != 2 or \
                int(add.params.get(0, 0)) != 0 or add.params.get(1) or \
                add.bottoms[0] == add.bottoms[1]:
            continue
        convs = []
        for blob in add.bottoms:
            src = producer.get(blob)
            geo = _kernel(src) if src is not None and sole(blob) else None
            if geo is not None:
                convs.append((src, geo))
        if len(convs) == 2:
            (a, ga), (b, gb) = convs
            if a.bottoms != b.bottoms:
                continue
            if ga["k"][0] * ga["k"][1] < gb["k"][0] * gb["k"][1]:
                (a, ga), (b, gb) = (b, gb), (a, ga)
            off = _place(ga, gb)
            if off is None:
                continue
            Wa, ba = _weights(a, ga)
            Wb, bb = _weights(b, gb)
            Wa[:, :, off[0]:off[0] + gb["k"][0], off[1]:off[1] + gb["k"][1]] += Wb
            ba = ba + bb
            remove(b)
        elif len(convs) == 1:
            (a, ga), = convs
            other = add.bottoms[1] if a.tops[0] == add.bottoms[0] else add.bottoms[0]
            tap = _identity(ga)
            if tap is None:
                continue
            src = producer.get(other)
            if other == a.bottoms[0]:  # conv(x) + x
                scale, shift, drop = np.ones(ga["n"], np.float32), 0.0, None
            elif src is not None and src.type == "BatchNorm" and src.bottoms == a.bottoms \
                    and sole(other) and int(src.params.get(0, -1)) == ga["n"]:
                # conv(x) + batchnorm(x)
                slope, mean, var, bias = (w.data.astype(np.float64) for w in src.weights)
                k = slope / np.sqrt(var + float(src.params.get(1, 0.0)))
                scale, shift, drop = k.astype(np.float32), (bias - mean * k), src
            else:
                continue
            Wa, ba = _weights(a, ga)
            per = ga["cin"] // ga["group"]
            o = np.arange(ga["n"])
            Wa[o, o % per, tap[0], tap[1]] += scale
            ba = ba + shift
            if drop is not None:
                remove(drop)
        else:
            continue
        a.weights = [Weight(Wa.reshape(a.weights[0].data.shape), flagged=True),
                     Weight(np.asarray(ba, np.float32))]
        a.params[5] = 1
        remove(add)
        del producer[a.tops[0]]
        a.tops = list(add.tops)
        producer[a.tops[0]] = a
        merged = True
    if merged:
        g.layers = [layer for layer in g.layers if id(layer) not in gone]
    return merged


def _drop_neutral(g: Graph, protected: set) -> None:
    neutral = {0: 0.0, 1: 0.0, 2: 1.0, 3: 1.0}  # add, sub, mul, div: the b that changes nothing
    drop = {}
    for layer in g.layers:
        if layer.type != "BinaryOp" or len(layer.bottoms) != 1:
            continue
        p = layer.params
        op = int(p.get(0, 0))
        if int(p.get(1, 0)) == 1 and op in neutral and float(p.get(2, 0.0)) == neutral[op] \
                and layer.tops[0] not in protected:
            drop[id(layer)] = (layer.tops[0], layer.bottoms[0])
    if not drop:
        return
    rename = {top: bottom for top, bottom in drop.values()}

    def source(blob):
        while blob in rename:
            blob = rename[blob]
        return blob

    g.layers = [layer for layer in g.layers if id(layer) not in drop]
    for layer in g.layers:
        layer.bottoms = [source(b) for b in layer.bottoms]


def run(g: Graph) -> None:
    protected = set(g.outputs)
    _fuse_mish(g, protected)
    _drop_neutral(g, protected)
    changed = True
    while changed:
        changed = _merge_branches(g, protected)
        for layer in list(g.layers):
            if layer.type not in WEIGHTED or layer not in g.layers or 9 in layer.params:
                continue
            nxt = _sole(g, layer.tops[0], protected)
            if nxt is None:
                continue
            if nxt.type == "BatchNorm" and int(nxt.params.get(0, -1)) == int(layer.params[0]) \
                    and not layer.params.get(8):  # int8 weights stay as they are
                _fold_bn(layer, nxt)
            elif nxt.type in ACTIVATIONS and not nxt.weights:
                _fuse_activation(layer, nxt)
            else:
                continue
            layer.tops = list(nxt.tops)
            g.layers.remove(nxt)
            changed = True
