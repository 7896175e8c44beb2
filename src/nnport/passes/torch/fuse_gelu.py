"""Erf-based GELU written out by exporters (opset < 20) -> one ``nnport::Gelu`` node.

    y = x * 0.5 * (1 + erf(x / sqrt(2)))      (any order of the two Muls; Div or Mul by 1/sqrt2)

prints as ``F.gelu(x)``: one kernel instead of five element-wise passes, and reads as GELU.
Runs on the copy the torch emitter converts (after verification-relevant normalization), like the
attention fusion.
"""
from __future__ import annotations

import math

import onnx_ir as ir
from onnx_ir.passes import PassResult

from .match import (DOMAIN, FLOATS, close, finish, is_op, only_use, other, replace_output, scalar,
                    single_user)


def _match(erf: ir.Node):
    """Returns (x, last_node) when ``erf`` is the core of a GELU."""
    scaled = erf.inputs[0]
    pre = scaled.producer() if scaled is not None else None
    if is_op(pre, "Div") and close(scalar(pre.inputs[1]), math.sqrt(2)):
        x = pre.inputs[0]
    elif is_op(pre, "Mul") and (close(scalar(pre.inputs[1]), 1 / math.sqrt(2))
                                or close(scalar(pre.inputs[0]), 1 / math.sqrt(2))):
        x = pre.inputs[0] if scalar(pre.inputs[0]) is None else pre.inputs[1]
    else:
        return None
    if x is None or x.dtype not in FLOATS or not only_use(scaled, erf):
        return None
    add = single_user(erf.outputs[0])
    if not is_op(add, "Add") or not close(scalar(other(add, erf.outputs[0])), 1.0):
        return None
    # the remaining product x * 0.5 * add, in any of its spellings
    m1 = single_user(add.outputs[0])
    if not is_op(m1, "Mul"):
        return None
    o = other(m1, add.outputs[0])
    if o is x:  # (x * add) * 0.5
        m2 = single_user(m1.outputs[0])
        if is_op(m2, "Mul") and close(scalar(other(m2, m1.outputs[0])), 0.5):
            return x, m2
        return None
    if close(scalar(o), 0.5):  # (add * 0.5) * x
        m2 = single_user(m1.outputs[0])
        if is_op(m2, "Mul") and other(m2, m1.outputs[0]) is x:
            return x, m2
        return None
    half = o.producer() if o is not None else None  # (x * 0.5) * add
    if is_op(half, "Mul") and other(half, x) is not None and close(
            scalar(other(half, x)), 0.5) and only_use(o, m1):
        return x, m1
    return None


def fuse_gelu(model: ir.Model) -> PassResult:
    """Rewrite every erf-GELU of the main graph."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not is_op(node, "Erf") or node.graph is None:
            continue
        m = _match(node)
        if m is None:
            continue
        x, last = m
        fused = ir.Node(DOMAIN, "Gelu", [x], name=(node.name or "gelu") + "_gelu")
        fused.metadata_props.update(node.metadata_props)  # its module scope (torch_emit/tree.py)
        replace_output(graph, last, fused)
        count += 1
    return finish(model, count)
