"""Fuse an inference BatchNormalization into the Conv (or ConvTranspose) that feeds it.

y = (conv(x, W) + b - mean) * scale / sqrt(var + eps) + beta
  = conv(x, W * s) + (b - mean) * s + beta            with s = scale / sqrt(var + eps)
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array, replace_value


def _fuse_one(graph: ir.Graph, bn: ir.Node) -> bool:
    x = bn.inputs[0]
    conv = x.producer() if x is not None else None
    if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or conv.domain not in (
            "", "ai.onnx"):
        return False
    if len(x.uses()) != 1 or x.is_graph_output():
        return False
    if bn.attributes.get("training_mode") is not None and bn.attributes["training_mode"].value:
        return False
    if any(o.uses() or o.is_graph_output() for o in bn.outputs[1:]):
        return False
    if len(bn.inputs) < 5:
        return False
    scale, beta, mean, var = (const_array(v) for v in bn.inputs[1:5])
    w = const_array(conv.inputs[1]) if len(conv.inputs) > 1 else None
    if any(a is None for a in (scale, beta, mean, var, w)) or w.dtype.kind != "f":
        return False
    b = const_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
    if len(conv.inputs) > 2 and conv.inputs[2] is not None and b is None:
        return False
    eps = bn.attributes["epsilon"].value if "epsilon" in bn.attributes else 1e-5
    s = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    if conv.op_type == "Conv":
        cout = w.shape[0]
        if s.shape[0] != cout:
            return False
        w2 = w.astype(np.float64) * s.reshape((cout,) + (1,) * (w.ndim - 1))
    else:  # ConvTranspose weight: (Cin, Cout/group, k...)
        group = conv.attributes["group"].value if "group" in conv.attributes else 1
        cout = w.shape[1] * group
        if s.shape[0] != cout:
            return False
        cin = w.shape[0]
        wg = w.astype(np.float64).reshape((group, cin // group, w.shape[1]) + w.shape[2:])
        wg = wg * s.reshape(group, 1, w.shape[1], *([1] * (w.ndim - 2)))
        w2 = wg.reshape(w.shape)
    b0 = np.zeros(cout) if b is None else b.astype(np.float64)
    b2 = (b0 - mean.astype(np.float64)) * s + beta.astype(np.float64)
    name = conv.name or bn.name or "conv"
    w_val = ir.Value(name=f"{name}_fused_weight", const_value=ir.tensor(
        w2.astype(w.dtype), name=f"{name}_fused_weight"))
    b_val = ir.Value(name=f"{name}_fused_bias", const_value=ir.tensor(
        b2.astype(w.dtype), name=f"{name}_fused_bias"))
    for v in (w_val, b_val):
        v.shape = ir.Shape(v.const_value.shape.numpy())
        v.type = ir.TensorType(v.const_value.dtype)
        graph.register_initializer(v)
    if len(conv.inputs) < 3:
        conv.resize_inputs(3)
    conv.replace_input_with(1, w_val)
    conv.replace_input_with(2, b_val)
    replace_value(bn.outputs[0], conv.outputs[0])
    graph.remove(bn, safe=True)
    return True


def fuse_bn_into_conv(model: ir.Model) -> PassResult:
    graph = model.graph
    changed = False
    for node in list(graph):
        if node.op_type == "BatchNormalization" and node.domain in ("", "ai.onnx"):
            changed |= _fuse_one(graph, node)
    return PassResult(model, changed)
