"""Comparisons, logic and Where, computed on float masks (ncnn has no bool tensors and no
compare layer): 1.0 is true, 0.0 is false.

- ``a > b``: step(a - b), with step(d) = Clip(d * 1e38, 0, 1): exactly 1 for d >= 1.2e-38 (every
  positive normal float), 0 for d <= 0.  ``a >= b`` = 1 - step(b - a); ``a == b`` =
  1 - step(|a - b|); Not = 1 - x; And = x * y; Or = max(x, y); Xor = |x - y|.
- Where(c, x, y) = c * x + (1 - c) * y, with infinite constants (masked_fill(-inf)) replaced by
  the largest finite float so that 0 * y stays 0.

IsNaN has no exact form (``NO_EXACT_FORM``): every ncnn arithmetic layer carries a NaN through,
and the ones that could replace it (BinaryOp max/min, Clip, ReLU) do so differently in their
vector and scalar loops per CPU (x86 SSE/AVX max returns its second operand, NEON returns NaN,
the C++ loops compare), so no chain of layers marks NaN as 1.0 everywhere.

ncnn params: BinaryOp 0=op_type (0 add 1 sub 2 mul 4 max 7 rsub) 1=with_scalar 2=b; Clip 0=min
1=max; UnaryOp 0=op_type (0 abs).
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from .common import STEP as _STEP, binary

_NOT = [("BinaryOp", {0: 7, 1: 1, 2: 1.0})]  # 1 - x

# ONNX ops left unmapped on purpose, with the reason the pre-flight gives
NO_EXACT_FORM = {
    "IsNaN": "ncnn has no compare layer, and no chain of its float layers marks a NaN exactly "
             "(its arithmetic carries NaN through; max/min/Clip treat it differently per CPU "
             "code path)",
}


def _finite(ctx, v):
    """``v``, or a copy of the constant ``v`` with infinities made the largest finite float."""
    c = ctx.const(v)
    if c is None or np.all(np.isfinite(np.asarray(c, np.float64))):
        return v
    fixed = np.nan_to_num(np.asarray(c, np.float32), posinf=np.finfo(np.float32).max,
                          neginf=-np.finfo(np.float32).max)
    return ctx.temp(v.name + "_finite", fixed.shape, fixed)


# before 7 the comparisons broadcast by the broadcast/axis attributes (onnxruntime runs them
# from 7); later versions add types
@register({"Greater": (7, 9, 13), "Less": (7, 9, 13), "GreaterOrEqual": (12, 16),
           "LessOrEqual": (12, 16), "Equal": (7, 11, 13, 19)})
def compare(ctx, node):
    a, b = node.inputs
    y = node.outputs[0]
    op = node.op_type
    if op in ("Less", "GreaterOrEqual"):
        a, b = b, a  # b - a
    binary(ctx, 1, _finite(ctx, a), _finite(ctx, b), y)
    if op in ("Greater", "Less"):
        layers = _STEP
    elif op == "Equal":
        layers = [("UnaryOp", {0: 0})] + _STEP + _NOT
    else:
        layers = _STEP + _NOT
    ctx.then(y, layers)


@register("Not", 1)
def not_(ctx, node):
    ctx.unary("BinaryOp", {0: 7, 1: 1, 2: 1.0})


@register(dict.fromkeys(("And", "Or", "Xor"), 7))
def logic(ctx, node):
    a, b = node.inputs
    y = node.outputs[0]
    binary(ctx, {"And": 2, "Or": 4, "Xor": 1}[node.op_type], a, b, y)
    if node.op_type == "Xor":
        ctx.then(y, [("UnaryOp", {0: 0})])


@register("Where", (9, 16))
def where(ctx, node):
    c, x, y = node.inputs
    out = node.outputs[0]
    x, y = _finite(ctx, x), _finite(ctx, y)
    shp = ctx.shape(out)
    cc = ctx.const(c)
    if cc is not None:
        nc = ctx.temp(c.name + "_not", np.shape(cc), 1.0 - np.asarray(cc, np.float32))
    else:
        nc = ctx.temp(c.name + "_not", ctx.shape(c))
        ctx.unary("BinaryOp", {0: 7, 1: 1, 2: 1.0}, x=c, y=nc)
    t1 = ctx.temp(out.name + "_if", shp)
    t2 = ctx.temp(out.name + "_else", shp)
    binary(ctx, 2, c, x, t1)
    binary(ctx, 2, nc, y, t2)
    binary(ctx, 0, t1, t2, out)
