"""Elementwise binary ops -> BinaryOp.

ncnn params: 0=op_type (0 add 1 sub 2 mul 3 div 4 max 5 min 6 pow 7 rsub 8 rdiv 9 rpow)
1=with_scalar 2=b (the scalar).  Broadcasting: both blobs are brought to the same ncnn rank
(constants become MemoryData shaped like the other operand), then ncnn broadcasts size-1 dims.
"""
from __future__ import annotations

import numpy as np

from . import register

OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "Pow": 6}
REVERSED = {1: 7, 3: 8, 6: 9}


def binary(ctx, op, a, b, y):
    ca, cb = ctx.const(a), ctx.const(b)
    if cb is not None and np.asarray(cb).size == 1:
        return ctx.add("BinaryOp", [ctx.blob(a)], [ctx.out(y, ctx.drop(a))],
                       {0: op, 1: 1, 2: float(np.asarray(cb).ravel()[0])})
    if ca is not None and np.asarray(ca).size == 1:
        op2 = REVERSED.get(op, op)
        return ctx.add("BinaryOp", [ctx.blob(b)], [ctx.out(y, ctx.drop(b))],
                       {0: op2, 1: 1, 2: float(np.asarray(ca).ravel()[0])})
    if ca is not None:
        ba, bb, ref = ctx.blob(a, like=b), ctx.blob(b), b
    elif cb is not None:
        ba, bb, ref = ctx.blob(a), ctx.blob(b, like=a), a
    else:
        ref = a if ctx.rank(a) >= ctx.rank(b) else b
        ba, bb = ctx.blob(a), ctx.blob(b)
        na, nb = len(ctx.nshape(a)), len(ctx.nshape(b))
        if na != nb:  # numpy aligns the trailing dims: give the shorter one leading 1s
            lo, lo_blob = (a, ba) if na < nb else (b, bb)
            want = max(na, nb)
            shape = (1,) * (want - len(ctx.nshape(lo))) + tuple(ctx.nshape(lo))
            full = ctx.nshape(ref)
            if len(shape) > 4 or any(d not in (1, f) and f != 1 for d, f in zip(shape, full)):
                ctx.fail(f"broadcast between ranks {ctx.rank(a)} and {ctx.rank(b)} is not "
                         "mapped")
            from .op_shape import reshape_params

            lifted = ctx.add("Reshape", [lo_blob], [ctx.g.unique(lo.name + "_lifted")],
                             reshape_params(ctx, shape, None))
            ba, bb = (lifted, bb) if lo is a else (ba, lifted)
    return ctx.add("BinaryOp", [ba, bb], [ctx.out(y, ctx.drop(ref))], {0: op})


# x ** k for these constant k as one UnaryOp (0=op_type: 4 square 5 sqrt 6 rsqrt
# 15 reciprocal): ncnn's vectorized pow is exp(k * log(x)), NaN for every negative x even
# where the power is defined (x ** 2 of RMSNorm)
_POWERS = {2.0: 4, 0.5: 5, -0.5: 6, -1.0: 15}


@register(*OPS)
def binary_op(ctx, node):
    if node.op_type == "Pow":
        k = ctx.const(node.inputs[1])
        if k is not None and np.size(k) == 1 and float(np.ravel(k)[0]) in _POWERS:
            return ctx.unary("UnaryOp", {0: _POWERS[float(np.ravel(k)[0])]})
    binary(ctx, OPS[node.op_type], node.inputs[0], node.inputs[1], node.outputs[0])


@register("Sum")
def sum_(ctx, node):
    ins = list(node.inputs)
    if len(ins) == 1:
        return ctx.alias(node.outputs[0], ctx.blob(ins[0]), ctx.drop(ins[0]))
    if len(ins) == 2:
        return binary(ctx, 0, ins[0], ins[1], node.outputs[0])
    ctx.add("Eltwise", [ctx.blob(v) for v in ins], [ctx.out(node.outputs[0], ctx.drop(ins[0]))],
            {0: 1})  # Eltwise 0=op_type (0 prod 1 sum 2 max)


def scale_shift(ctx, x, k: np.ndarray, b: np.ndarray, y):
    """y = x * k + b with constant k, b shaped to broadcast against x (numpy rules)."""
    r = ctx.rank(x)
    k = k.reshape((1,) * (r - k.ndim) + k.shape).astype(np.float32)
    b = b.reshape((1,) * (r - b.ndim) + b.shape).astype(np.float32)
    if ctx.drop(x):
        k, b = k[0], b[0]
    mid = ctx.g.unique(y.name + "_scaled")
    ctx.add("BinaryOp", [ctx.blob(x), ctx.memory_data(k, y.name + "_k")], [mid], {0: 2})
    ctx.add("BinaryOp", [mid, ctx.memory_data(b, y.name + "_b")], [ctx.out(y, ctx.drop(x))],
            {0: 0})
