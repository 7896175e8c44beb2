"""Shape and layout ops: Reshape, Flatten, Transpose, Squeeze/Unsqueeze, Concat, Split, Slice,
Expand, Tile, Pad, Shape, Size, ConstantOfShape, Constant, Identity, Cast, CastLike, BitCast,
Range, EyeLike, Trilu, DepthToSpace, SpaceToDepth, CenterCropPad.

Inputs that are constant at conversion time (shapes, axes, pads, slice bounds) print as Python
literals (``x.reshape(1, -1)``, ``x[:, 1:3]``, ``F.pad(x, [1, 1])``); when they are computed at
run time the generated code computes with them at run time instead.
"""
from __future__ import annotations

import re

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register
from ..symbolic import sym_of

_BIG = 2**31  # slice bounds beyond this mean "to the end"


def _ints(ctx: Ctx, arg: Arg | None) -> list[int] | None:
    """A constant integer input as a list of Python ints, else None."""
    a = ctx.const(arg)
    if a is None:
        return None
    return [int(v) for v in np.asarray(a).reshape(-1).tolist()]


def _sym_ints(ctx: Ctx, arg: Arg | None) -> list | None:
    """An integer input known as constants or tracked shape expressions (symbolic.py): a list
    of ints and Python int expressions (strings), else None."""
    from ..symbolic import sym_of

    s = sym_of(ctx, arg)
    if s is None:
        return None
    s = s if isinstance(s, list) else [s]
    return [e.literal if e.literal is not None else f"({e})" if not e.isidentifier() and
            not _SIMPLE.match(e) else str(e) for e in s]


_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.shape\[-?\d+\])?$")


def _scalar(ctx: Ctx, arg: Arg) -> str:
    """A constant scalar input as a literal, else an expression converting it at run time."""
    a = ctx.const(arg)
    if a is not None:
        return ctx.lit(np.asarray(a).reshape(-1)[0].item())
    dt = ctx.dtype(arg)
    if dt is not None and dt.is_floating_point():
        return f"float({arg})"
    return f"int({arg})"


def _args(vals) -> str:
    return ", ".join(str(v) for v in vals)


def _norm_axis(ctx: Ctx, axis: int, rank: int | None) -> int:
    if axis < 0:
        if rank is None:
            ctx.fail("negative axis needs a known input rank")
        axis += rank
    return axis


# ---- Reshape / Flatten / Transpose ---------------------------------------------------------
def _reshape(ctx: Ctx, data: Arg, shape_arg: Arg | None, shape_list, allowzero: int):
    if shape_list is None:
        shape_list = _ints(ctx, shape_arg)
    if shape_list is None:
        fn = ctx.helper("_onnx_reshape")
        return f"{fn}({data}, {shape_arg}{', allowzero=1' if allowzero else ''})"
    dims = []
    for i, d in enumerate(shape_list):
        if d == 0 and not allowzero:
            dims.append(f"{data}.shape[{i}]")
        else:
            dims.append(str(d))
    if not dims:
        return f"{data}.reshape(())"
    return f"{data}.reshape({_args(dims)})"


@register("Reshape", (1, 5, 13, 14, 19, 21, 23, 24, 25))
def reshape(ctx: Ctx, data: Arg, shape=None, *, allowzero: int = 0, consumed_inputs=None,
            **attrs):
    if attrs:
        ctx.fail(f"attributes {sorted(attrs)} are not supported")
    # Reshape-1 has a 'shape' attribute, which arrives here as a list
    if isinstance(shape, (list, tuple)):
        return _reshape(ctx, data, None, [int(v) for v in shape], 0)
    if shape is None:
        ctx.fail("Reshape needs a shape")
    return _reshape(ctx, data, shape, None, allowzero)


@register("Flatten", (1, 9, 11, 13, 21, 23, 24, 25))
def flatten(ctx: Ctx, input: Arg, *, axis: int = 1):
    rank = ctx.rank(input)
    if axis < 0:
        if rank is None:
            return f"{input}.reshape({input}.shape[:{axis}].numel(), -1)"
        axis += rank
    if axis == 0:
        return f"{input}.reshape(1, -1)"
    if rank is not None and axis == rank:
        return f"{input}.reshape(-1, 1)" if rank else f"{input}.reshape(1, 1)"
    if rank is None:
        return f"{input}.reshape({input}.shape[:{axis}].numel(), -1)"
    if axis == 1:
        return f"{input}.flatten(1)"
    return f"{input}.flatten({axis}).flatten(0, {axis - 1})"


@register("Transpose", (1, 13, 21, 23, 24, 25))
def transpose(ctx: Ctx, data: Arg, *, perm=None):
    if perm is None:
        rank = ctx.rank(data)
        if rank is None:
            return f"{data}.permute(*range({data}.dim() - 1, -1, -1))"
        perm = list(range(rank - 1, -1, -1))
    if list(perm) == list(range(len(perm))):
        return str(data)
    return f"{data}.permute({_args(perm)})"


# ---- Squeeze / Unsqueeze -------------------------------------------------------------------
@register("Squeeze", (1, 11, 13, 21, 23, 24, 25))
def squeeze(ctx: Ctx, data: Arg, axes_in: Arg | None = None, *, axes=None):
    if axes_in is not None:
        axes = _ints(ctx, axes_in)
        if axes is None:  # run-time axes; an empty list means "every size-1 dim", as in ONNX
            return (f"({data}.squeeze(tuple({axes_in}.tolist())) if {axes_in}.numel() "
                    f"else {data}.squeeze())")
    if axes is None or len(axes) == 0:  # no axes, or an empty list: squeeze every 1
        return f"{data}.squeeze()"
    axes = list(axes)
    if len(axes) == 1:
        return f"{data}.squeeze({axes[0]})"
    return f"{data}.squeeze(({_args(axes)}))"


@register("Unsqueeze", (1, 11, 13, 21, 23, 24, 25))
def unsqueeze(ctx: Ctx, data: Arg, axes_in: Arg | None = None, *, axes=None):
    if axes_in is not None:
        axes = _ints(ctx, axes_in)
        if axes is None:
            return f"{ctx.helper('_onnx_unsqueeze')}({data}, {axes_in})"
    if axes is None:
        ctx.fail("Unsqueeze needs axes")
    axes = list(axes)
    rank = ctx.rank(data)
    if any(a < 0 for a in axes):
        if rank is None:
            if len(axes) == 1:
                return f"{data}.unsqueeze({axes[0]})"  # same meaning for a single axis
            return f"{ctx.helper('_onnx_unsqueeze')}({data}, {ctx.lit(axes)})"
        out_rank = rank + len(axes)
        axes = [a + out_rank if a < 0 else a for a in axes]
    out = str(data)
    for a in sorted(axes):
        out += f".unsqueeze({a})"
    return out


# ---- Concat / Split ------------------------------------------------------------------------
@register("Concat", (1, 4, 11, 13))
def concat(ctx: Ctx, *inputs: Arg, axis: int = 1):
    items = [a for a in inputs if a is not None]
    if len(items) == 1:
        return str(items[0])
    return f"torch.cat([{_args(items)}], dim={axis})"


@register("Split", (1, 2, 11, 13, 18))
def split(ctx: Ctx, input: Arg, split_in: Arg | None = None, *, axis: int = 0, split=None,
          num_outputs: int | None = None):
    n = len(ctx.node.outputs)
    sizes = list(split) if split is not None else None
    if split_in is not None:
        sizes = _ints(ctx, split_in)
        if sizes is None:
            expr = f"torch.split({input}, {split_in}.tolist(), dim={axis})"
            return expr + "[0]" if n == 1 else expr
    if sizes is None:
        count = num_outputs if num_outputs is not None else n
        shape = ctx.shape(input)
        d = None
        if shape is not None:
            d = shape[_norm_axis(ctx, axis, len(shape))]
        if d is not None:
            c = -(-d // count)
            sizes = [max(min(c, d - i * c), 0) for i in range(count)]
        elif ctx.opset >= 18:
            expr = f"torch.split({input}, -(-{input}.shape[{axis}] // {count}), dim={axis})"
            return expr + "[0]" if n == 1 else expr
        else:
            expr = f"torch.chunk({input}, {count}, dim={axis})"
            return expr + "[0]" if n == 1 else expr
    expr = f"torch.split({input}, {ctx.lit(sizes)}, dim={axis})"
    return expr + "[0]" if n == 1 else expr


# ---- Slice ---------------------------------------------------------------------------------
def _slice_const(ctx: Ctx, data: Arg, starts, ends, axes, steps) -> str | None:
    rank = ctx.rank(data)
    shape = ctx.shape(data)
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    norm = []
    for a0 in axes:
        a = a0
        if a < 0:
            if rank is None:
                return None
            a += rank
        if rank is not None and not 0 <= a < rank:
            ctx.fail(f"slice axis {a0} is out of range for rank {rank}")
        if rank is None and a >= 64:
            return None  # leave it to the run-time helper (torch tensors have at most 64 dims)
        norm.append(a)
    flips = []
    parts: dict[int, str] = {}
    for s, e, a, k in zip(starts, ends, norm, steps):
        if k == 0:
            ctx.fail("slice step 0")
        if k < 0:
            d = shape[a] if shape is not None and a < len(shape) else None
            if d is None:
                return None
            s = s + d if s < 0 else s
            e = e + d if e < 0 else e
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
            b, f = d - 1 - s, d - 1 - e
            flips.append(a)
            s, e, k = b, max(f, b), -k
        d = shape[a] if shape is not None and a < len(shape) else None
        # symbolic bounds (Python int expressions such as ``x.shape[1]``) slice as written:
        # for a positive step Python's clamping is ONNX's
        txt_s = s if isinstance(s, str) else ("" if (s == 0 or s <= -_BIG) else str(s))
        txt_e = e if isinstance(e, str) else (
            "" if (e >= _BIG or (d is not None and e >= d)) else str(e))
        txt = f"{txt_s}:{txt_e}" + (f":{k}" if k != 1 else "")
        parts[a] = txt
    base = str(data)
    if flips:
        base = f"{data}.flip({_args(sorted(flips))})" if len(flips) == 1 else \
            f"{data}.flip(({_args(sorted(flips))}))"
    parts = {a: t for a, t in parts.items() if t != ":"}
    if not parts:
        return base
    last = max(parts)
    idx = [parts.get(i, ":") for i in range(last + 1)]
    return f"{base}[{', '.join(idx)}]"


@register("Slice", (1, 10, 11, 13))
def slice_(ctx: Ctx, data: Arg, starts=None, ends=None, axes=None, steps=None, **attrs):
    if attrs:
        ctx.fail(f"attributes {sorted(attrs)} are not supported")
    if isinstance(starts, (list, tuple)):  # Slice-1: starts/ends/axes are attributes
        if ends is None:
            ctx.fail("Slice-1 needs starts and ends")
        st, en = [int(v) for v in starts], [int(v) for v in ends]
        ax = None if axes is None else [int(v) for v in axes]
        out = _slice_const(ctx, data, st, en, ax, None)
        if out is not None:
            return out
        fn = ctx.helper("_onnx_slice")
        return f"{fn}({data}, {ctx.lit(st)}, {ctx.lit(en)}, {ctx.lit(ax)})"
    cs, ce = _ints(ctx, starts), _ints(ctx, ends)
    ca = _ints(ctx, axes) if axes is not None else None
    ck = _ints(ctx, steps) if steps is not None else None
    if cs is not None and ce is not None and (axes is None or ca is not None) and \
            (steps is None or ck is not None):
        out = _slice_const(ctx, data, cs, ce, ca, ck)
        if out is not None:
            return out
    ss, se = _sym_ints(ctx, starts), _sym_ints(ctx, ends)
    if ss is not None and se is not None and (axes is None or ca is not None) and \
            (ck is None or all(k > 0 for k in ck)) and (steps is None or ck is not None):
        # bounds computed from shapes: stay Python ints (torch.export / compile keep them symbolic)
        out = _slice_const(ctx, data, ss, se, ca, ck)
        if out is not None:
            return out

    def src(arg, c):
        if arg is None:
            return "None"
        return ctx.lit(c) if c is not None else str(arg)

    fn = ctx.helper("_onnx_slice")
    args = [str(data), src(starts, cs), src(ends, ce)]
    if axes is not None or steps is not None:
        args.append(src(axes, ca))
    if steps is not None:
        args.append(src(steps, ck))
    return f"{fn}({', '.join(args)})"


# ---- Expand / Tile / Pad -------------------------------------------------------------------
@register("Expand", (8, 13))
def expand(ctx: Ctx, input: Arg, shape: Arg):
    s = _ints(ctx, shape)
    rank = ctx.rank(input)
    if s is None or rank is None:
        shp = ctx.lit(s) if s is not None else f"{shape}.tolist()"
        return f"{input}.expand(torch.broadcast_shapes({input}.shape, tuple({shp})))"
    n = max(len(s), rank)
    s = [1] * (n - len(s)) + s
    in_shape = ctx.shape(input)
    dims = []
    for i, d in enumerate(s):
        j = i - (n - rank)
        if j < 0:
            dims.append(str(d))
        elif d == 1 or (in_shape[j] is not None and in_shape[j] == d):
            dims.append("-1")
        else:
            dims.append(str(d))
    if n == rank and all(d == "-1" for d in dims):
        return str(input)
    return f"{input}.expand({_args(dims)})"


@register("Tile", (1, 6, 13))
def tile(ctx: Ctx, input: Arg, repeats: Arg, axis: Arg | None = None):
    if ctx.opset < 6:
        if axis is None:
            ctx.fail("Tile-1 needs the axis input")
        return (f"{input}.repeat(*[{_scalar(ctx, repeats)} if i == {_scalar(ctx, axis)} else 1 "
                f"for i in range({input}.dim())])")
    r = _ints(ctx, repeats)
    if r is None:
        return f"{input}.repeat({repeats}.tolist())"
    if all(v == 1 for v in r):
        return str(input)
    return f"{input}.repeat({_args(r)})"


_PAD_MODES = {"constant", "reflect", "edge", "wrap"}


@register("Pad", (1, 2, 11, 13, 18, 19, 21, 23, 24, 25))
def pad(ctx: Ctx, data: Arg, pads=None, constant_value: Arg | None = None,
        axes: Arg | None = None, *, mode: str = "constant", value: float = 0.0,
        paddings=None, **attrs):
    if attrs:
        ctx.fail(f"attributes {sorted(attrs)} are not supported")
    if isinstance(pads, (list, tuple)):  # Pad-2: 'pads' is an attribute
        paddings = pads
    if mode not in _PAD_MODES:
        ctx.fail(f"pad mode {mode!r} is not supported")
    if ctx.opset < 11:
        if paddings is None:
            ctx.fail("Pad needs pads")
        p = [int(v) for v in paddings]
        ax = None
        cv = ctx.lit(float(value))
    else:
        p = _ints(ctx, pads)
        ax = _ints(ctx, axes) if axes is not None else None
        if constant_value is None:
            cv = "0"
        else:
            c = ctx.const(constant_value)
            if c is not None:
                cv = ctx.lit(np.asarray(c).reshape(-1)[0].item()) if c.size else "0"
            else:
                cv = f"{constant_value}.item()"
        if p is None and axes is None and mode == "constant":
            tracked = _tracked_pad(ctx, data, pads, cv)
            if tracked is not None:
                return tracked
        if p is None or (axes is not None and ax is None):
            fn = ctx.helper("_onnx_pad")
            args = [str(data), str(pads) if p is None else ctx.lit(p), repr(mode), cv]
            if axes is not None:
                args.append(ctx.lit(ax) if ax is not None else str(axes))
            return f"{fn}({', '.join(args)})"
    rank = ctx.rank(data)
    n = len(p) // 2
    if ax is None:
        ax = list(range(n))
    if any(a < 0 for a in ax):
        if rank is None:
            fn = ctx.helper("_onnx_pad")
            return f"{fn}({data}, {ctx.lit(p)}, {mode!r}, {cv}, {ctx.lit(ax)})"
        ax = [a + rank if a < 0 else a for a in ax]
    if rank is None:
        rank = max(ax) + 1 if ax else 0
        if len(ax) != n or ax != list(range(n)):
            fn = ctx.helper("_onnx_pad")
            return f"{fn}({data}, {ctx.lit(p)}, {mode!r}, {cv}, {ctx.lit(ax)})"
    begin = {a: p[i] for i, a in enumerate(ax)}
    end = {a: p[i + n] for i, a in enumerate(ax)}
    used = [a for a in ax if begin[a] or end[a]]
    if not used:
        return str(data)
    if mode != "constant":
        fn = ctx.helper("_onnx_pad")
        return f"{fn}({data}, {ctx.lit(p)}, {mode!r}, axes={ctx.lit(ax)})" if \
            ax != list(range(rank)) else f"{fn}({data}, {ctx.lit(p)}, {mode!r})"
    return _f_pad(data, {a: begin.get(a, 0) for a in range(rank)},
                  {a: end.get(a, 0) for a in range(rank)}, rank, min(used), cv)


def _tracked_pad(ctx: Ctx, data: Arg, pads: Arg, cv: str) -> str | None:
    """A constant-mode pad of every axis whose pads are tracked shape arithmetic (Swin's
    ``(7 - H % 7) % 7``): ``F.pad`` with a list of Python ints, which ``torch.export`` traces,
    not a tensor read back with ``.tolist()``."""
    s = sym_of(ctx, pads)
    rank = ctx.rank(data)
    if not isinstance(s, list) or rank is None or len(s) != 2 * rank:
        return None
    begin, end = s[:rank], s[rank:]
    used = [a for a in range(rank) if begin[a].literal != 0 or end[a].literal != 0]
    if not used:
        return str(data)
    return _f_pad(data, begin, end, rank, min(used), cv)


def _f_pad(data: Arg, begin, end, rank: int, lo: int, cv: str) -> str:
    """``F.pad`` of axes ``lo``..``rank - 1``: torch lists (begin, end) pairs from the last
    axis back; ``begin``/``end`` map an axis to its pad (an int or a tracked expression)."""
    tp = []
    for a in range(rank - 1, lo - 1, -1):
        tp += [str(begin[a]), str(end[a])]
    val = "" if cv in ("0", "0.0") else f", value={cv}"
    return f"F.pad({data}, [{', '.join(tp)}]{val})"


# ---- Shape / Size / ConstantOfShape / Constant / Identity ---------------------------------
@register("Shape", (1, 13, 15, 19, 21, 23, 24, 25))
def shape(ctx: Ctx, data: Arg, *, start: int = 0, end: int | None = None):
    if start == 0 and end is None:
        sl = ""
    else:
        s = "" if start == 0 else str(start)
        e = "" if end is None else str(end)
        sl = f"[{s}:{e}]"
    return f"torch.tensor({data}.shape{sl}, dtype=torch.int64, device={data}.device)"


@register("Size", (1, 13, 19, 21, 23, 24, 25))
def size(ctx: Ctx, data: Arg):
    return f"torch.tensor({data}.numel(), dtype=torch.int64, device={data}.device)"


@register("ConstantOfShape", (9, 20, 21, 23, 24, 25))
def constant_of_shape(ctx: Ctx, input: Arg, *, value=None):
    if value is None:
        v, dt = 0.0, ir.DataType.FLOAT
    else:
        arr = np.asarray(value)
        v = arr.reshape(-1)[0].item()
        dt = ir.DataType.from_numpy(arr.dtype)
    dts = ctx.dtype_src(dt)
    s = _ints(ctx, input)
    sym = _sym_ints(ctx, input) if s is None else None
    if sym is not None:  # a shape computed from shapes: Python ints, on the tracked device
        from ..symbolic import _device

        d = _device(ctx, input)
        shp = f"({_args(sym)},)" if len(sym) == 1 else f"({_args(sym)})"
        dev = f", device={d}" if d else ""
    elif s is None:
        shp, dev = f"{input}.tolist()", f", device={input}.device"
    else:
        shp, dev = (f"({_args(s)},)" if len(s) == 1 else f"({_args(s)})"), ""
    if v == 0 and not (isinstance(v, float) and np.signbit(v)):
        return f"torch.zeros({shp}, dtype={dts}{dev})"
    if v == 1:
        return f"torch.ones({shp}, dtype={dts}{dev})"
    return f"torch.full({shp}, {ctx.lit(v, dt)}, dtype={dts}{dev})"


@register("Constant", (1, 9, 11, 12, 13, 19, 21, 23, 24, 25))
def constant(ctx: Ctx, *, value=None, sparse_value=None, value_float=None, value_floats=None,
             value_int=None, value_ints=None, value_string=None, value_strings=None):
    if sparse_value is not None:
        ctx.fail("sparse constants are not supported")
    if value is not None:
        arr = np.asarray(value)
        if arr.dtype.kind in "OUS":
            return ctx.lit(arr.tolist())
        dt = ir.DataType.from_numpy(arr.dtype)
        if arr.size <= 8 and dt in (ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.INT64,
                                    ir.DataType.INT32, ir.DataType.BOOL):
            return f"torch.tensor({ctx.lit(arr.tolist(), dt)}, dtype={ctx.dtype_src(dt)})"
        return ctx.weight(arr, ctx.out_names[0], parameter=False)
    if value_float is not None:
        return f"torch.tensor({ctx.lit(float(value_float), ir.DataType.FLOAT)}, dtype=torch.float32)"
    if value_floats is not None:
        return f"torch.tensor({ctx.lit([float(v) for v in value_floats], ir.DataType.FLOAT)}, " \
               f"dtype=torch.float32)"
    if value_int is not None:
        return f"torch.tensor({int(value_int)}, dtype=torch.int64)"
    if value_ints is not None:
        return f"torch.tensor({ctx.lit([int(v) for v in value_ints])}, dtype=torch.int64)"
    if value_string is not None:
        return ctx.lit(value_string)
    if value_strings is not None:
        return ctx.lit(list(value_strings))
    ctx.fail("Constant without a value")


@register("Identity", (1, 13, 14, 16, 19, 21, 23, 24, 25))
def identity(ctx: Ctx, input: Arg):
    return str(input)


# ---- Cast / CastLike / BitCast -------------------------------------------------------------
_F8_MAX = {
    ir.DataType.FLOAT8E4M3FN: 448.0, ir.DataType.FLOAT8E4M3FNUZ: 240.0,
    ir.DataType.FLOAT8E5M2: 57344.0, ir.DataType.FLOAT8E5M2FNUZ: 57344.0,
}
# the smallest magnitude that rounds (to nearest even) past the largest finite value:
# (threshold, whether the threshold itself overflows, overflow gives infinity)
_F8_OVERFLOW = {
    ir.DataType.FLOAT8E4M3FN: (464.0, False, False), ir.DataType.FLOAT8E4M3FNUZ: (248.0, True, False),
    ir.DataType.FLOAT8E5M2: (61440.0, True, True), ir.DataType.FLOAT8E5M2FNUZ: (61440.0, True, False),
}
# narrow integer types live in int8/uint8 containers: (bits, signed)
_NARROW_INT = {ir.DataType.INT4: (4, True), ir.DataType.UINT4: (4, False),
               ir.DataType.INT2: (2, True), ir.DataType.UINT2: (2, False)}


def _cast(ctx: Ctx, x: Arg, to: ir.DataType, saturate: int, round_mode: str) -> str:
    src = ctx.dtype(x)
    if to == ir.DataType.STRING or src == ir.DataType.STRING:
        ctx.fail("casts to or from strings have no torch equivalent")
    dts = ctx.dtype_src(to)
    if src == to:
        return str(x)
    if to == ir.DataType.FLOAT8E8M0:
        if round_mode not in ("up", "down", "nearest"):
            ctx.fail(f"unknown round_mode {round_mode!r}")
        fn = ctx.helper("_onnx_to_e8m0")
        return f"{fn}({x}, saturate={saturate}, round_mode={round_mode!r})"
    if to in _F8_MAX and saturate and (src is None or src.is_floating_point()):
        m = ctx.lit(_F8_MAX[to])
        return f"{x}.clamp({'-' + m}, {m}).to({dts})"
    if to in _F8_MAX and (src is None or src.is_floating_point()):
        # without saturation, values that round past the largest finite one become NaN
        # (E5M2: infinity); torch's conversion would saturate them
        limit, inclusive, inf = _F8_OVERFLOW[to]
        cmp = ">=" if inclusive else ">"
        repl = f"{x} * float('inf')" if inf else "float('nan')"
        return f"torch.where({x}.abs() {cmp} {ctx.lit(limit)}, {repl}, {x}).to({dts})"
    if to in _NARROW_INT:
        bits, signed = _NARROW_INT[to]
        mask = (1 << bits) - 1
        base = f"{x}.to(torch.int64)"
        wrapped = f"({base} & {mask})"
        if signed:
            half = 1 << (bits - 1)
            wrapped = f"(({base} + {half}) & {mask}) - {half}"
        return f"({wrapped}).to({dts})"
    if to in _UNSIGNED_WIDE and (src is None or src not in (to, ir.DataType.BOOL)):
        # uint16/uint32 compute in a wider signed type: keep the low bits, as a cast wraps
        if src is not None and src.is_floating_point():
            return f"{x}.to(torch.int64).bitwise_and({_UNSIGNED_WIDE[to]}).to({dts})"
        return f"{x}.to({dts}).bitwise_and({_UNSIGNED_WIDE[to]})"
    return f"{x}.to({dts})"


_UNSIGNED_WIDE = {ir.DataType.UINT16: "0xFFFF", ir.DataType.UINT32: "0xFFFFFFFF"}
# the same-size storage type of each type generated code computes in a wider type
_STORAGE = {ir.DataType.UINT16: "torch.int16", ir.DataType.UINT32: "torch.int32",
            ir.DataType.UINT64: "torch.int64"}


@register("Cast", (1, 6, 9, 13, 19, 21, 23, 24, 25, 28))
def cast(ctx: Ctx, input: Arg, *, to, saturate: int = 1, round_mode: str = "up"):
    if isinstance(to, str):  # Cast-1 spelled the type as a string
        try:
            to = ir.DataType[to.upper()]
        except KeyError:
            ctx.fail(f"unknown cast target {to!r}")
    return _cast(ctx, input, ir.DataType(to), saturate, round_mode)


@register("CastLike", (15, 19, 21, 23, 24, 25))
def cast_like(ctx: Ctx, input: Arg, target_type: Arg, *, saturate: int = 1,
              round_mode: str = "up"):
    to = ctx.dtype(target_type)
    if to is None:
        return f"{input}.to({target_type}.dtype)"
    return _cast(ctx, input, to, saturate, round_mode)


@register("BitCast", (26,))
def bitcast(ctx: Ctx, input: Arg, *, to):
    to = ir.DataType(to)
    src = ctx.dtype(input)
    x = str(input)
    if src in _STORAGE and src != ir.DataType.UINT64:
        x = f"{x}.to({_STORAGE[src]})"  # back to the value's own width (wraps)
    if to in _UNSIGNED_WIDE:
        return f"{x}.view({_STORAGE[to]}).to({ctx.dtype_src(to)}).bitwise_and({_UNSIGNED_WIDE[to]})"
    if to in _STORAGE:
        return f"{x}.view({_STORAGE[to]})"
    return f"{x}.view({ctx.dtype_src(to)})"


# ---- Range / EyeLike / Trilu ---------------------------------------------------------------
@register("Range", (11, 27))
def range_(ctx: Ctx, start: Arg, limit: Arg, delta: Arg, *, stash_type: int = 1):
    dt = ctx.dtype(start)
    dts = ctx.dtype_src(dt) if dt is not None else f"{start}.dtype"
    vals = [_scalar(ctx, a) for a in (start, limit, delta)]
    # the result lives where the run-time bounds live (a model moved to a GPU stays there)
    dyn = [a for a in (start, limit, delta) if not ctx.is_const(a)]
    dev = f", device={dyn[0]}.device" if dyn else ""
    if dt in (ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        # computed in float32 (the stash type), then rounded
        return f"torch.arange({_args(vals)}, dtype=torch.float32{dev}).to({dts})"
    if dt is not None and dt.is_integer():
        vals = [v if ctx.is_const(a) else f"int({a})" for v, a in zip(vals, (start, limit, delta))]
    return f"torch.arange({_args(vals)}, dtype={dts}{dev})"


@register("EyeLike", (9, 22))
def eye_like(ctx: Ctx, input: Arg, *, dtype: int | None = None, k: int = 0):
    dt = ir.DataType(dtype) if dtype is not None else ctx.dtype(input)
    dts = ctx.dtype_src(dt) if dt is not None else f"{input}.dtype"
    n, m = f"{input}.shape[0]", f"{input}.shape[1]"
    if k == 0:
        return f"torch.eye({n}, {m}, dtype={dts}, device={input}.device)"
    return f"torch.ones({n}, {m}, dtype={dts}, device={input}.device).triu({k}).tril({k})"


@register("Trilu", (14,))
def trilu(ctx: Ctx, input: Arg, k: Arg | None = None, *, upper: int = 1):
    fn = "torch.triu" if upper else "torch.tril"
    if k is None:
        return f"{fn}({input})"
    kv = _scalar(ctx, k)
    return f"{fn}({input}, {kv})" if kv != "0" else f"{fn}({input})"


# ---- DepthToSpace / SpaceToDepth / CenterCropPad -------------------------------------------
@register("DepthToSpace", (1, 11, 13, 28))
def depth_to_space(ctx: Ctx, input: Arg, *, blocksize: int, mode: str = "DCR"):
    bs = blocksize
    if mode == "CRD":
        return f"F.pixel_shuffle({input}, {bs})"
    b, c, h, w = (ctx.tmp(n) for n in ("b", "c", "h", "w"))
    ctx.line(f"{b}, {c}, {h}, {w} = {input}.shape")
    return (f"{input}.reshape({b}, {bs}, {bs}, {c} // {bs * bs}, {h}, {w})"
            f".permute(0, 3, 4, 1, 5, 2).reshape({b}, {c} // {bs * bs}, {h} * {bs}, {w} * {bs})")


@register("SpaceToDepth", (1, 13, 28))
def space_to_depth(ctx: Ctx, input: Arg, *, blocksize: int, mode: str = "DCR"):
    bs = blocksize
    if mode == "CRD":
        return f"F.pixel_unshuffle({input}, {bs})"
    b, c, h, w = (ctx.tmp(n) for n in ("b", "c", "h", "w"))
    ctx.line(f"{b}, {c}, {h}, {w} = {input}.shape")
    return (f"{input}.reshape({b}, {c}, {h} // {bs}, {bs}, {w} // {bs}, {bs})"
            f".permute(0, 3, 5, 1, 2, 4).reshape({b}, {c} * {bs * bs}, {h} // {bs}, {w} // {bs})")


@register("CenterCropPad", (18,))
def center_crop_pad(ctx: Ctx, input_data: Arg, shape: Arg, *, axes=None):
    fn = ctx.helper("_onnx_center_crop_pad")
    s = _ints(ctx, shape)
    args = [str(input_data), ctx.lit(s) if s is not None else str(shape)]
    if axes is not None:
        args.append(ctx.lit(list(axes)))
    return f"{fn}({', '.join(args)})"
