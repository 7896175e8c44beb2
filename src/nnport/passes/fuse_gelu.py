"""Erf-based GELU written out by exporters (opset < 20) -> one ``nnport::Gelu`` node.

    y = x * 0.5 * (1 + erf(x / sqrt(2)))      (any order of the two Muls; Div or Mul by 1/sqrt2)

prints as ``F.gelu(x)``: one kernel instead of five element-wise passes, and reads as GELU.
Runs on the copy the torch emitter converts (after verification-relevant normalization), like the
attention fusion.
"""
from __future__ import annotations

import math

import onnx_ir as ir

from .fuse_attention import DOMAIN, _FLOATS, _only_use, _scalar, finish, replace_output


def _is(node: ir.Node | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def _other(node: ir.Node, value: ir.Value) -> ir.Value | None:
    ins = list(node.inputs)
    if len(ins) != 2:
        return None
    if ins[0] is value:
        return ins[1]
    if ins[1] is value:
        return ins[0]
    return None


def _close(v: float | None, target: float) -> bool:
    return v is not None and abs(v - target) <= 1e-6 * abs(target)


def _single_user(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0]


def _match(erf: ir.Node):
    """Returns (x, last_node) when ``erf`` is the core of a GELU."""
    scaled = erf.inputs[0]
    pre = scaled.producer() if scaled is not None else None
    if _is(pre, "Div") and _close(_scalar(pre.inputs[1]), math.sqrt(2)):
        x = pre.inputs[0]
    elif _is(pre, "Mul") and (_close(_scalar(pre.inputs[1]), 1 / math.sqrt(2))
                              or _close(_scalar(pre.inputs[0]), 1 / math.sqrt(2))):
        x = pre.inputs[0] if _scalar(pre.inputs[0]) is None else pre.inputs[1]
    else:
        return None
    if x is None or x.dtype not in _FLOATS or not _only_use(scaled, erf):
        return None
    add = _single_user(erf.outputs[0])
    if not _is(add, "Add") or not _close(_scalar(_other(add, erf.outputs[0])), 1.0):
        return None
    # the remaining product x * 0.5 * add, in any of its spellings
    m1 = _single_user(add.outputs[0])
    if not _is(m1, "Mul"):
        return None
    o = _other(m1, add.outputs[0])
    if o is x:  # (x * add) * 0.5
        m2 = _single_user(m1.outputs[0])
        if _is(m2, "Mul") and _close(_scalar(_other(m2, m1.outputs[0])), 0.5):
            return x, m2
        return None
    if _close(_scalar(o), 0.5):  # (add * 0.5) * x
        m2 = _single_user(m1.outputs[0])
        if _is(m2, "Mul") and _other(m2, m1.outputs[0]) is x:
            return x, m2
        return None
    half = o.producer() if o is not None else None  # (x * 0.5) * add
    if _is(half, "Mul") and _other(half, x) is not None and _close(
            _scalar(_other(half, x)), 0.5) and _only_use(o, m1):
        return x, m1
    return None


def fuse_gelu(model: ir.Model) -> int:
    """Rewrite every erf-GELU of the main graph; returns how many."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not _is(node, "Erf") or node.graph is None:
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
