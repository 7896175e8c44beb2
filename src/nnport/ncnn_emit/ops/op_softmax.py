"""Softmax/LogSoftmax -> Softmax (0=axis counted from the outermost ncnn dim, 1=fixbug0=1)."""
from __future__ import annotations

from . import register
from ..emit import attrs_of


@register("Softmax", "LogSoftmax")
def softmax(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    axis = int(attrs_of(node).get("axis", -1))
    r = ctx.rank(x)
    a = axis + r if axis < 0 else axis
    if a != r - 1 and ctx.node.op_type:
        pass
    p = {0: ctx.axis(x, axis), 1: 1}
    if node.op_type == "Softmax":
        return ctx.add("Softmax", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))], p)
    mid = ctx.g.unique(y.name + "_softmax")
    ctx.add("Softmax", [ctx.blob(x)], [mid], p)
    ctx.add("UnaryOp", [mid], [ctx.out(y, ctx.drop(x))], {0: 8})
