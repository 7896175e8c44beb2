"""Fusions on the ncnn graph: Convolution/InnerProduct + BatchNorm folded into the weights;
Convolution/InnerProduct + ReLU/Clip/Sigmoid/HardSwish as 9=activation_type (1 relu, 2 leaky,
3 clip, 4 sigmoid, 6 hardswish) with -23310 10=activation_params."""
from __future__ import annotations

import numpy as np

from ..graph import Graph

WEIGHTED = {"Convolution", "ConvolutionDepthWise", "InnerProduct"}


def _sole(g: Graph, blob: str, protected: set):
    if blob in protected:
        return None
    cons = g.consumers().get(blob, [])
    return cons[0] if len(cons) == 1 else None


def run(g: Graph) -> None:
    protected = set(g.outputs)
    changed = True
    while changed:
        changed = False
        for layer in list(g.layers):
            if layer.type not in WEIGHTED or layer not in g.layers:
                continue
            nxt = _sole(g, layer.tops[0], protected)
            if nxt is None:
                continue
            if nxt.type == "BatchNorm" and 9 not in layer.params:
                slope, mean, var, bias = (w.data for w in nxt.weights)
                eps = float(nxt.params.get(1, 0.0))
                scale = slope / np.sqrt(var + eps)
                n = layer.params[0]
                W = layer.weights[0].data.reshape(n, -1) * scale.reshape(-1, 1)
                b = layer.weights[1].data if layer.params.get(5 if layer.type != "InnerProduct"
                                                              else 1) else np.zeros(n, np.float32)
                nb = (b - mean) * scale + bias
                layer.weights[0].data = W.astype(np.float32)
                bias_key = 1 if layer.type == "InnerProduct" else 5
                layer.params[bias_key] = 1
                layer.weights = [layer.weights[0], type(layer.weights[0])(nb.astype(np.float32))]
            elif nxt.type in ("ReLU", "Clip", "Sigmoid", "HardSwish") and 9 not in layer.params:
                if nxt.type == "ReLU":
                    slope = float(nxt.params.get(0, 0.0))
                    layer.params[9] = 1 if slope == 0 else 2
                    if slope:
                        layer.params[10] = [slope]
                elif nxt.type == "Clip":
                    layer.params[9] = 3
                    layer.params[10] = [float(nxt.params.get(0)), float(nxt.params.get(1))]
                elif nxt.type == "Sigmoid":
                    layer.params[9] = 4
                else:
                    layer.params[9] = 6
                    layer.params[10] = [float(nxt.params[0]), float(nxt.params[1])]
            else:
                continue
            layer.tops = list(nxt.tops)
            g.layers.remove(nxt)
            changed = True
