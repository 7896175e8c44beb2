"""Gather/scatter and index-producing ops: Gather, GatherElements, GatherND, ScatterElements,
ScatterND, Scatter, Where, NonZero, TopK, ArgMax/ArgMin, Hardmax, OneHot, Compress,
ReverseSequence, CumSum, CumProd, Unique, Det, Einsum, TensorScatter.

Most print as one torch call (``torch.gather``, ``torch.scatter_reduce``, ``torch.where``);
the few without a torch equivalent call a small helper copied into the generated file.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register


def _axis_int(ctx: Ctx, arg: Arg) -> str:
    a = ctx.const(arg)
    if a is not None:
        return str(int(np.asarray(a).reshape(-1)[0]))
    return f"int({arg})"


def _may_be_negative(ctx: Ctx, indices: Arg) -> bool:
    c = ctx.const(indices)
    return c is None or bool((np.asarray(c) < 0).any())


def _norm_indices(ctx: Ctx, data: Arg, indices: Arg, axis: int) -> str:
    """``indices`` as int64 with negative entries wrapped (torch.gather/scatter reject both)."""
    if ctx.dtype(indices) not in (None, ir.DataType.INT64):
        indices = Arg(f"{indices}.long()", indices.value)
    if not _may_be_negative(ctx, indices):
        return str(indices)
    idx = ctx.tmp("idx")
    ctx.line(f"{idx} = torch.where({indices} < 0, {indices} + {data}.shape[{axis}], {indices})")
    return idx


# ---- gather ------------------------------------------------------------------------------
@register("Gather", (1, 11, 13))
def gather(ctx: Ctx, data: Arg, indices: Arg, *, axis: int = 0):
    rank = ctx.rank(data)
    if axis < 0:
        if rank is None:
            return f"torch.index_select({data}, {axis}, {indices}.reshape(-1)).reshape(" \
                   f"{data}.shape[:{axis}] + {indices}.shape + {data}.shape[{axis}:][1:])"
        axis += rank
    c = ctx.const(indices)
    lead = ":, " * axis
    if c is not None and c.ndim == 0:
        return f"{data}[{lead}{int(c)}]"
    return f"{data}[{lead}{indices}]"


@register("GatherElements", (11, 13))
def gather_elements(ctx: Ctx, data: Arg, indices: Arg, *, axis: int = 0):
    idx = _norm_indices(ctx, data, indices, axis)
    return f"torch.gather({data}, {axis}, {idx})"


@register("GatherND", (11, 12, 13))
def gather_nd(ctx: Ctx, data: Arg, indices: Arg, *, batch_dims: int = 0):
    fn = ctx.helper("_onnx_gather_nd")
    return f"{fn}({data}, {indices}, {batch_dims})" if batch_dims else f"{fn}({data}, {indices})"


# ---- scatter -----------------------------------------------------------------------------
_SCATTER_REDUCE = {"mul": "prod", "max": "amax", "min": "amin"}


def _scatter_elements(ctx: Ctx, data: Arg, indices: Arg, updates: Arg, axis: int,
                      reduction: str) -> str:
    idx = _norm_indices(ctx, data, indices, axis)
    if reduction == "none":
        return f"torch.scatter({data}, {axis}, {idx}, {updates})"
    if reduction == "add":
        return f"torch.scatter_add({data}, {axis}, {idx}, {updates})"
    if reduction in _SCATTER_REDUCE:
        return f"torch.scatter_reduce({data}, {axis}, {idx}, {updates}, {_SCATTER_REDUCE[reduction]!r})"
    ctx.fail(f"unknown reduction {reduction!r}")


@register("ScatterElements", (11, 13, 16, 18))
def scatter_elements(ctx: Ctx, data: Arg, indices: Arg, updates: Arg, *, axis: int = 0,
                     reduction: str = "none"):
    return _scatter_elements(ctx, data, indices, updates, axis, reduction)


@register("Scatter", (9, 11))
def scatter(ctx: Ctx, data: Arg, indices: Arg, updates: Arg, *, axis: int = 0):
    return _scatter_elements(ctx, data, indices, updates, axis, "none")


@register("ScatterND", (11, 13, 16, 18))
def scatter_nd(ctx: Ctx, data: Arg, indices: Arg, updates: Arg, *, reduction: str = "none"):
    if reduction not in ("none", "add", "mul", "max", "min"):
        ctx.fail(f"unknown reduction {reduction!r}")
    fn = ctx.helper("_onnx_scatter_nd")
    red = f", {reduction!r}" if reduction != "none" else ""
    return f"{fn}({data}, {indices}, {updates}{red})"


@register("TensorScatter", (24,))
def tensor_scatter(ctx: Ctx, past_cache: Arg, update: Arg, write_indices: Arg | None = None, *,
                   mode: str = "linear", axis: int = -2):
    if mode not in ("linear", "circular"):
        ctx.fail(f"unknown mode {mode!r}")
    fn = ctx.helper("_onnx_tensor_scatter")
    wi = str(write_indices) if write_indices is not None else "None"
    return f"{fn}({past_cache}, {update}, {wi}, {mode!r}, {axis})"


# ---- selection ---------------------------------------------------------------------------
@register("Where", (9, 16))
def where(ctx: Ctx, condition: Arg, X: Arg, Y: Arg):
    return f"torch.where({condition}, {X}, {Y})"


@register("NonZero", (9, 13))
def nonzero(ctx: Ctx, X: Arg):
    if ctx.rank(X) == 0:
        return f"torch.nonzero({X}.reshape(1)).T[:0]"
    return f"torch.nonzero({X}).T"


@register("Compress", (9, 11, 28))
def compress(ctx: Ctx, input: Arg, condition: Arg, *, axis: int | None = None):
    keep = f"torch.nonzero({condition}).reshape(-1)"
    if axis is None:
        return f"{input}.reshape(-1)[{keep}]"
    return f"torch.index_select({input}, {axis}, {keep})"


@register("TopK", (1, 10, 11, 24))
def topk(ctx: Ctx, X: Arg, K: Arg | None = None, *, axis: int = -1, k: int | None = None,
         largest: int = 1, sorted: int = 1):
    hint = False
    if K is not None:
        kc = ctx.const(K)
        kv = str(int(np.asarray(kc).reshape(-1)[0])) if kc is not None else None
        if kv is None:
            from ..symbolic import sym_of

            s = sym_of(ctx, K)
            s = s[0] if isinstance(s, list) and len(s) == 1 else s
            if isinstance(s, str):  # k computed from shapes: a Python int expression
                kv = str(s)
            else:  # a value: read once (below), and tell torch.export / compile its range
                kv = ctx.tmp("k")
                hint = True
    elif k is not None:
        kv = str(int(k))
    else:
        ctx.fail("TopK needs k")
    # a stable sort keeps equal values in index order, as ONNX requires
    v, i = ctx.tmp("values"), ctx.tmp("indices")
    desc = ", descending=True" if largest else ""
    ctx.line(f"{v}, {i} = torch.sort({X}, dim={axis}{desc}, stable=True)")
    if hint:
        # k is data: an unbacked int for torch.export / torch.compile, with its range checked
        ctx.line("if torch.jit.is_scripting():")
        ctx.line(f"    {kv} = int({K})")
        ctx.line("else:")
        ctx.line(f"    {kv} = {K}.item()")
        ctx.line("    if not torch.jit.is_tracing():")
        ctx.line(f"        torch._check({kv} >= 0)")
        ctx.line(f"        torch._check({kv} <= {v}.shape[{axis}])")
    return [f"{v}.narrow({axis}, 0, {kv})", f"{i}.narrow({axis}, 0, {kv})"]


def _arg_reduce(fn: str):
    def emit(ctx: Ctx, data: Arg, *, axis: int = 0, keepdims: int = 1,
             select_last_index: int = 0):
        kd = ", keepdim=True" if keepdims else ""
        if not select_last_index:
            return f"torch.{fn}({data}, dim={axis}{kd})"
        return (f"{data}.shape[{axis}] - 1 - torch.{fn}({data}.flip({axis}), dim={axis}{kd})")

    return emit


register("ArgMax", (1, 11, 12, 13))(_arg_reduce("argmax"))
register("ArgMin", (1, 11, 12, 13))(_arg_reduce("argmin"))


@register("Hardmax", (1, 11, 13))
def hardmax(ctx: Ctx, input: Arg, *, axis: int | None = None):
    if axis is None:
        axis = -1 if ctx.opset >= 13 else 1
    if ctx.opset >= 13:
        return (f"torch.zeros_like({input}).scatter({axis}, "
                f"torch.argmax({input}, dim={axis}, keepdim=True), 1.0)")
    # before opset 13 the input is viewed as 2-D: [prod(dims[:axis]), prod(dims[axis:])]
    flat = ctx.tmp("flat")
    ctx.line(f"{flat} = {input}.reshape({input}.shape[:{axis}].numel(), -1)")
    return (f"torch.zeros_like({flat}).scatter(1, torch.argmax({flat}, dim=1, keepdim=True), 1.0)"
            f".reshape({input}.shape)")


@register("OneHot", (9, 11, 28))
def one_hot(ctx: Ctx, indices: Arg, depth: Arg, values: Arg, *, axis: int = -1):
    fn = ctx.helper("_onnx_one_hot")
    d = ctx.const(depth)
    dv = str(int(np.asarray(d).reshape(-1)[0])) if d is not None else str(depth)
    ax = f", axis={axis}" if axis != -1 else ""
    return f"{fn}({indices}, {dv}, {values}{ax})"


@register("ReverseSequence", (10, 28))
def reverse_sequence(ctx: Ctx, input: Arg, sequence_lens: Arg, *, batch_axis: int = 1,
                     time_axis: int = 0):
    fn = ctx.helper("_onnx_reverse_sequence")
    return f"{fn}({input}, {sequence_lens}, time_axis={time_axis}, batch_axis={batch_axis})"


# ---- cumulative --------------------------------------------------------------------------
def _cumulative(prod: bool):
    def emit(ctx: Ctx, x: Arg, axis: Arg, *, exclusive: int = 0, reverse: int = 0):
        ax = _axis_int(ctx, axis)
        if exclusive or reverse:
            fn = ctx.helper("_onnx_cumulative")
            extra = ", prod=True" if prod else ""
            return f"{fn}({x}, {ax}, exclusive={exclusive}, reverse={reverse}{extra})"
        op = "torch.cumprod" if prod else "torch.cumsum"
        dt = ctx.dtype(x)
        # torch promotes small integer types to int64; ONNX keeps the input type
        if dt is not None and (dt.is_floating_point()):
            return f"{op}({x}, dim={ax})"
        return f"{op}({x}, dim={ax}, dtype={x}.dtype)"

    return emit


register("CumSum", (11, 14))(_cumulative(False))
register("CumProd", (26,))(_cumulative(True))


@register("Unique", (11, 28))
def unique(ctx: Ctx, X: Arg, *, axis: int | None = None, sorted: int = 1):
    fn = ctx.helper("_onnx_unique")
    args = [str(X)]
    if axis is not None:
        args.append(f"axis={axis}")
    if not sorted:
        args.append("sorted=0")
    expr = f"{fn}({', '.join(args)})"
    n = len(ctx.node.outputs)
    if n == 4:
        return expr
    names = [ctx.out_names[i] if i < n else "_" for i in range(4)]
    ctx.line(f"{', '.join(names)} = {expr}")
    return None


# ---- linear algebra ----------------------------------------------------------------------
@register("Det", (11, 22))
def det(ctx: Ctx, X: Arg):
    return f"torch.linalg.det({X})"


@register("Einsum", (12, 28))
def einsum(ctx: Ctx, *Inputs: Arg, equation: str):
    eq = equation.replace(" ", "")
    return f"torch.einsum({eq!r}, {', '.join(str(i) for i in Inputs)})"
