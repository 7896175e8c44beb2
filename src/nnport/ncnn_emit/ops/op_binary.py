"""Elementwise binary ops -> BinaryOp.

ncnn params: 0=op_type (0 add 1 sub 2 mul 3 div 4 max 5 min 6 pow 7 rsub 8 rdiv 9 rpow)
1=with_scalar 2=b (the scalar).  Broadcasting: both blobs are brought to the same ncnn rank
(constants become MemoryData shaped like the other operand), then ncnn broadcasts size-1 dims.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from .common import binary

OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "Pow": 6}
# x ** k for these constant k as one UnaryOp (0=op_type: 4 square 5 sqrt 6 rsqrt
# 15 reciprocal): ncnn's vectorized pow is exp(k * log(x)), NaN for every negative x even
# where the power is defined (x ** 2 of RMSNorm)
_POWERS = {2.0: 4, 0.5: 5, -0.5: 6, -1.0: 15}


def _chain(ctx, op, ins, y):
    """A variadic Sum/Max/Min as a chain of BinaryOps, each broadcasting (numpy rules) the
    result so far against the next input."""
    import onnx_ir as ir

    acc = ins[0]
    for i, v in enumerate(ins[1:], 1):
        if i == len(ins) - 1:
            out = y
        else:
            name = f"{y.name}__part{i}"
            while name in ctx.probe.shape:
                name += "_"
            out = ir.Value(name=name)
            ctx.probe.shape[name] = tuple(np.broadcast_shapes(ctx.shape(acc), ctx.shape(v)))
        binary(ctx, op, acc, v, out)
        acc = out


# before 7 the arithmetic ops broadcast by the broadcast/axis attributes, not numpy's rules
# (onnxruntime runs them from 7); Max/Min 6 take inputs of one shape, 8 broadcast
@register({**dict.fromkeys(("Add", "Sub", "Mul", "Div"), (7, 13, 14)), "Pow": (7, 12, 13, 15),
           "Max": (6, 8, 12, 13), "Min": (6, 8, 12, 13)})
def binary_op(ctx, node):
    if len(node.inputs) == 1:  # Max/Min of one input
        return sum_(ctx, node)
    if len(node.inputs) > 2 and node.op_type in ("Max", "Min"):  # variadic
        return _chain(ctx, OPS[node.op_type], list(node.inputs), node.outputs[0])
    if node.op_type == "Pow":
        k = ctx.const(node.inputs[1])
        if k is not None and np.size(k) == 1 and float(np.ravel(k)[0]) in _POWERS:
            return ctx.unary("UnaryOp", {0: _POWERS[float(np.ravel(k)[0])]})
    binary(ctx, OPS[node.op_type], node.inputs[0], node.inputs[1], node.outputs[0])


@register("Sum", (6, 8, 13))
def sum_(ctx, node):
    ins = list(node.inputs)
    if len(ins) == 1:
        return ctx.alias(node.outputs[0], ctx.blob(ins[0]), ctx.drop(ins[0]))
    if len(ins) == 2:
        return binary(ctx, 0, ins[0], ins[1], node.outputs[0])
    if any(ctx.is_const(v) or ctx.shape(v) != ctx.shape(ins[0]) for v in ins):
        return _chain(ctx, 0, ins, node.outputs[0])  # Eltwise does not broadcast
    ctx.add("Eltwise", [ctx.blob(v) for v in ins], [ctx.out(node.outputs[0], ctx.drop(ins[0]))],
            {0: 1})  # Eltwise 0=op_type (0 prod 1 sum 2 max)
