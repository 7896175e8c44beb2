"""Fusions on the ncnn graph.

- Softplus -> TanH -> BinaryOp mul (with the Softplus input) -> one Mish layer (torch exports
  Mish that way before opset 18);
- Convolution/InnerProduct (+ the 1-D, 3-D, depthwise and deconvolution variants) followed by
  BatchNorm: folded into the weights (all their weight layouts are output-channel major;
  int8 layers, 8=int8_scale_term, keep theirs and the BatchNorm);
- the same layers followed by an activation: the activation goes into 9=activation_type with
  -23310 10=activation_params.  ncnn's fused activations (src/layer/fused_activation.h) are
  only 1 relu, 2 leakyrelu (slope), 3 clip (min, max), 4 sigmoid, 5 mish, 6 hardswish
  (alpha, beta): Swish, GELU, ELU, TanH... stay separate layers.
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


def run(g: Graph) -> None:
    protected = set(g.outputs)
    _fuse_mish(g, protected)
    changed = True
    while changed:
        changed = False
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
