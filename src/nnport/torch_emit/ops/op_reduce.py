"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, every version.

Axes come from the ``axes`` attribute (old versions) or the second input (ReduceSum 13, the
others 18+).  Constant axes print as literals (``torch.sum(x, dim=[1, 2], keepdim=True)``);
dynamic axes become a list computed at run time.  An empty axes list reduces everything, unless
``noop_with_empty_axes`` makes the op the identity.  Reductions over an empty set follow ONNX:
sum 0, product 1, max -inf, min +inf, log-sum -inf.
"""
from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register

_INPUT_AXES_SINCE = {"ReduceSum": 13}


def _kd(keepdims) -> str:
    return "True" if keepdims else "False"


def _fill_value(op: str, dt: ir.DataType | None):
    """Value of a reduction over an empty set, or None when it is the natural result of torch."""
    if op in ("ReduceMax", "ReduceMin"):
        sign = 1 if op == "ReduceMin" else -1
        if dt == ir.DataType.BOOL:
            return op == "ReduceMin"
        if dt is not None and dt.is_integer():
            info = np.iinfo(dt.numpy())
            return int(info.max if sign > 0 else info.min)
        return sign * math.inf
    if op in ("ReduceLogSum", "ReduceLogSumExp"):
        return -math.inf
    return None


def _empty_fill(ctx: Ctx, op: str, X: Arg) -> str | None:
    """The literal ONNX gives a reduction of an empty set when ``X`` is statically empty and
    torch would not give it by itself."""
    shape = ctx.shape(X)
    if shape is None or 0 not in shape:
        return None
    fill = _fill_value(op, ctx.dtype(X))
    if fill is None:
        return None
    if isinstance(fill, float) and not math.isfinite(fill):
        return "float('inf')" if fill > 0 else "-float('inf')"
    return ctx.lit(fill)


def _apply(ctx: Ctx, op: str, X: Arg, dims: str | None, keepdims: int) -> str:
    """The torch expression reducing ``X`` over ``dims`` (a python expression for a list of
    ints, or None for every dimension)."""
    kd = _kd(keepdims)
    dt = ctx.dtype(X)
    is_float = dt is None or dt.is_floating_point()
    all_ = False
    if dims is None:
        if keepdims:
            dims = f"list(range({X}.dim()))"
            rank = ctx.rank(X)
            if rank is not None:
                dims = ctx.lit(list(range(rank)))
        else:
            all_ = True

    def call(fn: str, x: str) -> str:
        if all_:
            return f"{fn}({x})"
        return f"{fn}({x}, dim={dims}, keepdim={kd})"

    if op == "ReduceSum":
        return call("torch.sum", X)
    if op == "ReduceMean":
        if not is_float:
            return f"{call('torch.mean', f'{X}.double()')}.to({X}.dtype)"
        return call("torch.mean", X)
    if op in ("ReduceMax", "ReduceMin"):
        if dt == ir.DataType.BOOL:
            fn = "torch.any" if op == "ReduceMax" else "torch.all"
            if all_:
                return f"{fn}({X})"
            return f"{fn}({X}, dim={dims}, keepdim={kd})"
        return call("torch.amax" if op == "ReduceMax" else "torch.amin", X)
    if op == "ReduceProd":
        if all_:
            return f"torch.prod({X})"
        lit = _literal_dims(ctx, dims)
        if lit is not None and len(lit) == 1:
            return f"torch.prod({X}, dim={lit[0]}, keepdim={kd})"
        if lit is not None and all(d >= 0 for d in lit):
            out = str(X)
            for d in sorted(lit, reverse=True):
                out = f"torch.prod({out}, dim={d}, keepdim={kd})"
            return out
        # dims unknown or negative: move reduced dims last, flatten, reduce once
        keep = f"[d for d in range({X}.dim()) if d not in [a % {X}.dim() for a in {dims}]]"
        flat = f"torch.prod({X}.permute({keep} + [a % {X}.dim() for a in {dims}])" \
               f".flatten(len({keep})), dim=-1)"
        if keepdims:
            shape = f"[1 if d in [a % {X}.dim() for a in {dims}] else s " \
                    f"for d, s in enumerate({X}.shape)]"
            return f"{flat}.reshape({shape})"
        return flat
    if op == "ReduceL1":
        return call("torch.sum", f"torch.abs({X})")
    if op == "ReduceL2":
        if is_float:
            if all_:
                return f"torch.linalg.vector_norm({X})"
            return f"torch.linalg.vector_norm({X}, dim={dims}, keepdim={kd})"
        return f"torch.sqrt({call('torch.sum', f'({X} * {X}).double()')}).to({X}.dtype)"
    if op == "ReduceLogSum":
        return f"torch.log({call('torch.sum', X)})"
    if op == "ReduceLogSumExp":
        if all_:
            return f"torch.logsumexp({X}.flatten(), dim=0)"
        return f"torch.logsumexp({X}, dim={dims}, keepdim={kd})"
    if op == "ReduceSumSquare":
        return call("torch.sum", f"{X} * {X}")
    ctx.fail(f"unknown reduction {op}")


def _literal_dims(ctx: Ctx, dims: str | None):
    if dims is None:
        return None
    try:
        import ast

        v = ast.literal_eval(dims)
    except (ValueError, SyntaxError):
        return None
    return list(v) if isinstance(v, (list, tuple)) else None


def _emit(ctx: Ctx, op: str, X: Arg, axes_list, axes_arg: Arg | None, keepdims: int,
          noop: int) -> str | None:
    rank = ctx.rank(X)
    dims: str | None
    if axes_arg is not None and axes_list is None:
        # axes known only at run time
        ax = ctx.tmp("axes")
        ctx.line(f"{ax} = {axes_arg}.tolist()")
        out = ctx.out_names[0]
        fill = _empty_fill(ctx, op, X)
        if fill is not None:
            if noop:
                ctx.line(f"{out} = {X} if len({ax}) == 0 else "
                         f"{ctx.helper('_reduce_fill')}({X}, {ax}, {_kd(keepdims)}, {fill})")
            else:
                ctx.line(f"{out} = {ctx.helper('_reduce_fill')}({X}, {ax}, {_kd(keepdims)}, {fill})")
            return None
        ctx.line(f"if len({ax}) == 0:")
        with ctx.indent():
            if noop:
                ctx.line(f"{out} = {X}")
            else:
                ctx.line(f"{out} = {_apply(ctx, op, X, None, keepdims)}")
        ctx.line("else:")
        with ctx.indent():
            ctx.line(f"{out} = {_apply(ctx, op, X, ax, keepdims)}")
        return None
    axes = list(axes_list) if axes_list is not None else []
    if not axes:
        if noop:
            return str(X)
        dims = None
    else:
        if rank is not None:
            axes = [a + rank if a < 0 else a for a in axes]
        dims = ctx.lit(axes)
    fill = _empty_fill(ctx, op, X)
    if fill is not None:
        return f"{ctx.helper('_reduce_fill')}({X}, {ctx.lit(axes)}, {_kd(keepdims)}, {fill})"
    return _apply(ctx, op, X, dims, keepdims)


def _make(op: str, versions: tuple[int, ...]):
    input_since = _INPUT_AXES_SINCE.get(op, 18)

    def emit(ctx: Ctx, data: Arg, axes_in: Arg | None = None, *, axes=None, keepdims: int = 1,
             noop_with_empty_axes: int = 0):
        if ctx.opset >= input_since:
            if axes_in is None:
                return _emit(ctx, op, data, [], None, keepdims, noop_with_empty_axes)
            c = ctx.const(axes_in)
            lst = None if c is None else [int(a) for a in c.reshape(-1)]
            return _emit(ctx, op, data, lst, axes_in, keepdims, noop_with_empty_axes)
        if axes_in is not None:
            ctx.fail("axes given as an input before the opset that allows it")
        return _emit(ctx, op, data, axes, None, keepdims, 0)

    emit.__name__ = op.lower()
    register(op, versions)(emit)


_make("ReduceSum", (1, 11, 13))
_make("ReduceMean", (1, 11, 13, 18))
_make("ReduceMax", (1, 11, 12, 13, 18, 20))
_make("ReduceMin", (1, 11, 12, 13, 18, 20))
_make("ReduceProd", (1, 11, 13, 18))
_make("ReduceL1", (1, 11, 13, 18))
_make("ReduceL2", (1, 11, 13, 18))
_make("ReduceLogSum", (1, 11, 13, 18, 28))
_make("ReduceLogSumExp", (1, 11, 13, 18, 28))
_make("ReduceSumSquare", (1, 11, 13, 18))
