"""Softmax/LogSoftmax -> Softmax (operators.md: 0=axis counted from the outermost ncnn dim,
1=fixbug0=1); LogSoftmax adds UnaryOp 0=8 (log)."""
from __future__ import annotations

import numpy as np

from ..registry import register
from .common import attrs_of


@register({"Softmax": (1, 11, 13), "LogSoftmax": (1, 11, 13)})
def softmax(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    r = ctx.rank(x)
    opset = ctx.model.opset_imports.get("", 13)
    axis = int(attrs_of(node).get("axis", -1 if opset >= 13 else 1))
    axis = axis + r if axis < 0 else axis
    if opset < 13 and axis < r - 1:
        return _coerced(ctx, node, x, y, axis)
    p = {0: ctx.axis(x, axis), 1: 1}
    if node.op_type == "Softmax":
        return ctx.add("Softmax", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))], p)
    mid = ctx.g.unique(y.name + "_softmax")
    ctx.add("Softmax", [ctx.blob(x)], [mid], p)
    ctx.add("UnaryOp", [mid], [ctx.out(y, ctx.drop(x))], {0: 8})


def _coerced(ctx, node, x, y, axis):
    """Before opset 13 the softmax runs over all axes from ``axis`` on, flattened."""
    from .common import reshape_params

    if ctx.drop(x) and axis == 0:
        ctx.fail("softmax over the batch axis")
    shp = ctx.shape(x)
    keep = list(ctx.nshape(x)[:ctx.axis(x, axis)])
    flat = keep + [int(np.prod(shp[axis:]))]
    dyn = ctx.probe.shape_varies.get(x.name)
    if dyn is not None and dyn.any():
        ctx.fail("opset < 13 Softmax over several axes of a dynamic-size tensor")
    mid = ctx.add("Reshape", [ctx.blob(x)], [ctx.g.unique(y.name + "_flat")],
                  reshape_params(ctx, flat, None))
    mid = ctx.add("Softmax", [mid], [ctx.g.unique(y.name + "_softmax")],
                  {0: len(flat) - 1, 1: 1})
    if node.op_type == "LogSoftmax":
        mid = ctx.add("UnaryOp", [mid], [ctx.g.unique(y.name + "_log")], {0: 8})
    ctx.add("Reshape", [mid], [ctx.out(y, ctx.drop(x))],
            reshape_params(ctx, ctx.nshape(x), None))
