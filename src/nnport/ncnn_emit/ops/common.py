"""What the op emitters share: node attributes, Reshape and Permute params, the broadcasting
BinaryOp, a blob with all its dims, the step function of the comparisons.

The ground of ``ncnn_emit/ops``: it imports no op module, and op modules import helpers from
here rather than from each other (``op_quant``, the int8 layer support Conv and Gemm call, is
the one op module others import).

ncnn params: Reshape 0=w 1=h 11=d 2=c (0 = copy from bottom, -1 = remaining); Permute
0=order_type (index of the axis order among all orders, outermost first); BinaryOp 0=op_type
(0 add 1 sub 2 mul 3 div 4 max 5 min 6 pow 7 rsub 8 rdiv 9 rpow) 1=with_scalar 2=b; Clip 0=min
1=max.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir


def attrs_of(node: ir.Node) -> dict:
    out = {}
    for k, a in node.attributes.items():
        v = a.value
        if isinstance(v, ir.TensorProtocol):
            v = v.numpy()
        elif isinstance(v, (list, tuple)):
            v = list(v)
        out[k] = v
    return out


def reshape_params(ctx, out_nshape, out_dyn, in_nshape=None, in_dyn=None) -> dict:
    """Reshape params for a target ncnn shape; size-dependent dims become 0 (copy) or -1."""
    vals = list(out_nshape)
    dyn = list(out_dyn) if out_dyn is not None else [False] * len(vals)
    n = len(vals)
    if sum(dyn) > 1 and in_nshape is not None and len(in_nshape) == n and in_dyn is not None:
        for i in range(n):
            if dyn[i] and in_dyn[i] and in_nshape[i] == vals[i]:
                vals[i], dyn[i] = 0, False
    if sum(dyn) > 1:
        ctx.fail("reshape with several size-dependent dims cannot be written as ncnn params; "
                 "convert with a fixed --input-shape of a static model")
    for i in range(n):
        if dyn[i]:
            vals[i] = -1
    return {k: int(v) for k, v in zip(shape_keys(n), reversed(vals))}


def shape_keys(n: int) -> list[int]:
    """Param ids of w, h, (d,) c for an n-dim ncnn blob, innermost first."""
    return [0, 1, 11, 2] if n == 4 else [0, 1, 2][:n]


def permute_type(order) -> int:
    return list(itertools.permutations(range(len(order)))).index(tuple(order))


REVERSED = {1: 7, 3: 8, 6: 9}


def binary(ctx, op, a, b, y):
    ca, cb = ctx.const(a), ctx.const(b)
    if cb is not None and np.asarray(cb).size == 1:
        return _emit_binary(ctx, [ctx.blob(a)], y, ctx.drop(a),
                            {0: op, 1: 1, 2: float(np.asarray(cb).ravel()[0])}, a)
    if ca is not None and np.asarray(ca).size == 1:
        op2 = REVERSED.get(op, op)
        return _emit_binary(ctx, [ctx.blob(b)], y, ctx.drop(b),
                            {0: op2, 1: 1, 2: float(np.asarray(ca).ravel()[0])}, b)
    if ca is not None and _spans_batch(ctx, ca, b):
        return ctx.add("BinaryOp", [_full(ctx, a, b), whole(ctx, b)], [ctx.out(y, False)],
                       {0: op})
    if cb is not None and _spans_batch(ctx, cb, a):
        return ctx.add("BinaryOp", [whole(ctx, a), _full(ctx, b, a)], [ctx.out(y, False)],
                       {0: op})
    if ca is not None:
        ba, bb, ref = ctx.blob(a, like=b), ctx.blob(b), b
    elif cb is not None:
        ba, bb, ref = ctx.blob(a), ctx.blob(b, like=a), a
    else:
        ref = a if ctx.rank(a) >= ctx.rank(b) else b
        if ctx.rank(a) == ctx.rank(b) and ctx.drop(a) != ctx.drop(b):
            ref = b if ctx.drop(a) else a  # (1, 3) + (2, 1): the result keeps its axis 0
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
            lifted = ctx.add("Reshape", [lo_blob], [ctx.g.unique(lo.name + "_lifted")],
                             reshape_params(ctx, shape, None))
            ba, bb = (lifted, bb) if lo is a else (ba, lifted)
    return _emit_binary(ctx, [ba, bb], y, ctx.drop(ref), {0: op}, ref)


def _emit_binary(ctx, bottoms, y, drop, params, ref):
    """The BinaryOp, whose blob has ``ref``'s ncnn rank (ncnn broadcasts within that rank);
    where ``y`` has more dims (a constant of higher rank: (1, 1, n) + (1, n)), a Reshape
    gives the blob the shape ``y`` declares."""
    top = ctx.out(y, drop)
    want = ctx.nshape(y)
    if len(want) == len(ctx.nshape(ref)):
        return ctx.add("BinaryOp", bottoms, [top], params)
    mid = ctx.add("BinaryOp", bottoms, [ctx.g.unique(y.name + "_flat")], params)
    return ctx.add("Reshape", [mid], [top], reshape_params(ctx, want, ndyn(ctx, y)))


def ndyn(ctx, v):
    """Per ncnn dim of ``v`` (outermost first), whether its size depends on the input's."""
    m = ctx.probe.shape_varies.get(v.name)
    if m is None:
        return None
    m = list(m)
    return m[1:] if ctx.drop(v) else m


def _spans_batch(ctx, c, v) -> bool:
    """The constant ``c``, aligned to ``v``'s rank, has more than one entry on the axis that
    ``v`` holds as a dropped batch of 1 (``torch.diag``: a (1, n) row against an (n, n) mask):
    the result is held whole."""
    c, r = np.asarray(c), ctx.rank(v)
    return ctx.drop(v) and c.ndim >= r and c.shape[c.ndim - r] > 1


def _full(ctx, c, like):
    """The constant ``c`` as a MemoryData of ``like``'s rank, every axis kept."""
    arr = np.asarray(ctx.const(c), np.float32)
    r = ctx.rank(like)
    if arr.ndim > r and all(d == 1 for d in arr.shape[:arr.ndim - r]):
        arr = arr.reshape(arr.shape[arr.ndim - r:])
    return ctx.memory_data(arr, c.name)


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


def whole(ctx, v):
    """The blob of ``v`` with all its dims (a leading 1 is kept: dynamic weights are read
    as (c=out, [d=in,] h, w) blobs)."""
    if not ctx.drop(v) and not ctx.is_const(v):
        return ctx.blob(v)
    if ctx.is_const(v):
        return ctx.memory_data(np.asarray(ctx.const(v), np.float32), v.name)
    return ctx.add("Reshape", [ctx.blob(v)], [ctx.g.unique(v.name + "_whole")],
                   reshape_params(ctx, ctx.shape(v), None))


# step(d) = Clip(d * 1e38, 0, 1): 1 for every positive normal float, 0 for d <= 0
# (see op_compare)
_BIG = 1e38
STEP = [("BinaryOp", {0: 2, 1: 1, 2: _BIG}), ("Clip", {0: 0.0, 1: 1.0})]
