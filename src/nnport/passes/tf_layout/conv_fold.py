"""Fold per-output-channel Mul/Add after a Conv into the Conv's weight and bias.

TensorFlow exporters split an inference BatchNormalization into ``x * scale + shift`` and
leave the Mul (and sometimes the Add) after the convolution:
    conv(x, W, b) * s + c  ==  conv(x, W * s[:, None, ...], b * s + c)
when ``s`` and ``c`` are constants that vary at most along the channel axis (axis 1).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array as const, replace_value
from .common import is_op, new_const, single_use


def _per_channel(arr: np.ndarray, rank: int, cout: int) -> np.ndarray | None:
    """``arr`` as a (cout,) vector when it broadcasts along axis 1 only of a rank-``rank``
    output, else None."""
    if arr.ndim > rank:
        return None
    full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    for i, d in enumerate(full.shape):
        if i != 1 and d != 1:
            return None
    if full.shape[1] not in (1, cout):
        return None
    return np.broadcast_to(full.reshape(-1), (cout,)).astype(np.float64)


def _fold_one(graph: ir.Graph, op: ir.Node) -> bool:
    if not is_op(op, "Mul", "Add", "Sub") or len(op.inputs) != 2:
        return False
    for idx in (0, 1):
        y = op.inputs[idx]
        conv = y.producer() if y is not None else None
        if is_op(conv, "Conv"):
            break
    else:
        return False
    if op.op_type == "Sub" and idx != 0:
        return False
    if not single_use(y) or len(conv.inputs) < 2:
        return False
    w = const(conv.inputs[1])
    has_b = len(conv.inputs) > 2 and conv.inputs[2] is not None
    b = const(conv.inputs[2]) if has_b else None
    c = const(op.inputs[1 - idx])
    if w is None or c is None or w.dtype.kind != "f" or (has_b and b is None):
        return False
    cout = w.shape[0]
    vec = _per_channel(c, w.ndim, cout)
    if vec is None:
        return False
    b64 = np.zeros(cout) if b is None else b.astype(np.float64)
    w64 = w.astype(np.float64)
    if op.op_type == "Mul":
        w64 = w64 * vec.reshape((cout,) + (1,) * (w.ndim - 1))
        b64 = b64 * vec
    elif op.op_type == "Add":
        b64 = b64 + vec
    else:
        b64 = b64 - vec
    name = conv.name or "conv"
    conv.replace_input_with(1, new_const(graph, w64.astype(w.dtype), f"{name}_weight"))
    if len(conv.inputs) < 3:
        conv.resize_inputs(3)
    conv.replace_input_with(2, new_const(graph, b64.astype(w.dtype), f"{name}_bias"))
    out = op.outputs[0]
    replace_value(out, conv.outputs[0])
    graph.remove(op, safe=True)
    return True


def fold_conv_affine(model: ir.Model) -> PassResult:
    graph = model.graph
    changed = False
    again = True
    while again:
        again = False
        for node in list(graph):
            if node.graph is graph and _fold_one(graph, node):
                again = changed = True
    return PassResult(model, changed)
