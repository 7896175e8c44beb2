"""Erf-based GELU written out by exporters (opset < 20) -> one ``nnport::Gelu`` node.

    y = x * 0.5 * (1 + erf(x / sqrt(2)))      (any order of the two Muls; Div or Mul by 1/sqrt2)

prints as ``F.gelu(x)``: one kernel instead of five element-wise passes, and reads as GELU.
Runs on the copy the torch emitter converts (after verification-relevant normalization), like the
attention fusion.  The matcher (``passes/match.gelu``) is the ncnn target's too.
"""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import PassResult

from ..match import DOMAIN, FLOATS, finish, gelu, is_op, replace_output


def fuse_gelu(model: ir.Model) -> PassResult:
    """Rewrite every erf-GELU of the main graph."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not is_op(node, "Erf") or node.graph is None:
            continue
        m = gelu(node)
        if m is None or m[0].dtype not in FLOATS:
            continue
        x, last = m[0], m[1][-1]
        fused = ir.Node(DOMAIN, "Gelu", [x], name=(node.name or "gelu") + "_gelu")
        fused.metadata_props.update(node.metadata_props)  # its module scope (torch_emit/tree.py)
        replace_output(graph, last, fused)
        count += 1
    return finish(model, count)
