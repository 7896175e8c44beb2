"""Reshape/Flatten/Squeeze/Unsqueeze -> Reshape or Flatten; Transpose -> Permute; Concat;
Split -> Slice; Slice/Gather(scalar index) -> Crop; Pad -> Padding.

ncnn params: Reshape 0=w 1=h 11=d 2=c (0 = copy from bottom, -1 = remaining, -233 = absent);
Flatten (none); Permute 0=order_type (index of the axis order among all orders, outermost
first); Concat 0=axis; Slice -23300 0=slices array (-233 = rest) 1=axis; Crop -23309 9=starts
-23310 10=ends -23311 11=axes; Padding 0=top 1=bottom 2=left 3=right 4=type (0 constant
1 replicate 2 reflect) 5=value 7=front 8=behind.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from .common import attrs_of, ndyn, permute_type, reshape_params, whole
from ..graph import Weight

KEYS = [0, 1, 11, 2]  # w, h, d, c: innermost first


def emit_reshape(ctx, x, y, drop=None):
    ydrop = ctx.drop(y) if drop is None else drop
    out = ctx.out(y, ydrop)
    oshape = ctx.nshape(y)
    if len(oshape) == 0:
        oshape = (1,)
    if len(oshape) == 1 and ctx.drop(x):
        return ctx.add("Flatten", [ctx.blob(x)], [out])
    p = reshape_params(ctx, oshape, ndyn(ctx, y), ctx.nshape(x), ndyn(ctx, x))
    return ctx.add("Reshape", [ctx.blob(x)], [out], p)


# read from the shapes alone, so the axes or shape as attributes or inputs are all one;
# Reshape 1 (shape attribute) is not run by onnxruntime
@register({"Reshape": (5, 13, 14, 19, 21, 23, 24, 25), "Flatten": (1, 9, 11, 13, 21, 23, 24, 25),
           "Squeeze": (1, 11, 13, 21, 23, 24, 25), "Unsqueeze": (1, 11, 13, 21, 23, 24, 25)})
def reshape(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    if ctx.shape(x) == ctx.shape(y):
        return ctx.alias(y, ctx.blob(x), ctx.drop(x))
    # data moved into axis 0 (windows or patches as a batch) stays a plain ncnn dim: ops that
    # need a real batch of 1 (convolutions, pooling) check for it themselves
    emit_reshape(ctx, x, y)


@register("Transpose", (1, 13, 21, 23, 24, 25))
def transpose(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    r = ctx.rank(x)
    perm = list(attrs_of(node).get("perm") or reversed(range(r)))
    drop = ctx.drop(x)
    shp = ctx.shape(x)
    moved = [p for p in perm if shp[p] != 1]
    if moved == sorted(moved):  # only size-1 axes move: the data order stays, a reshape
        if ctx.shape(y) == shp:
            return ctx.alias(y, ctx.blob(x), drop)
        return emit_reshape(ctx, x, y)
    if not drop or perm[0] == 0:
        p = [q - 1 for q in perm[1:]] if drop else perm
        if p == sorted(p):
            return ctx.alias(y, ctx.blob(x), drop)
        if len(p) <= 4:
            return ctx.add("Permute", [ctx.blob(x)], [ctx.out(y, drop)], {0: permute_type(p)})
    # the batch axis moves, or more than 4 dims: permute merged axes (static shapes)
    from ..legalize.rewrite import permute_steps

    steps = permute_steps(list(shp), perm)
    if steps is None:
        ctx.fail("transpose cannot be split into permutations of at most 4 dims")
    cur, cur_shape = ctx.blob(x), tuple(ctx.nshape(x))
    for shape, order in steps:
        if tuple(shape) != cur_shape:
            mid = ctx.g.unique(y.name + "_merged")
            cur = ctx.add("Reshape", [cur], [mid], reshape_params(ctx, shape, None))
        mid = ctx.g.unique(y.name + "_permuted")
        cur = ctx.add("Permute", [cur], [mid], {0: permute_type(order)})
        cur_shape = tuple(shape[o] for o in order)
    out = ctx.out(y)
    ctx.add("Reshape", [cur], [out], reshape_params(ctx, ctx.nshape(y) or (1,), None))


@register("Concat", (4, 11, 13))  # 1: axis optional (default 1)
def concat(ctx, node):
    axis = int(attrs_of(node)["axis"])
    ins = [v for v in node.inputs if v is not None and int(np.prod(ctx.shape(v))) != 0]
    ref = next((v for v in ins if not ctx.is_const(v)), ins[0])
    y = node.outputs[0]
    if (axis if axis >= 0 else axis + ctx.rank(ref)) == 0 and 2 <= ctx.rank(y) <= 4 and \
            any(ctx.drop(v) for v in ins if not ctx.is_const(v)):
        # on a dropped batch axis (an unrolled RNN stacks its steps so): every input with
        # its leading dim kept, the result held whole
        ctx.add("Concat", [whole(ctx, v) for v in ins], [ctx.out(y, False)], {0: 0})
        return
    blobs = [ctx.blob(v) if not ctx.is_const(v) else ctx.blob(v, like=ref) for v in ins]
    ctx.add("Concat", blobs, [ctx.out(y, ctx.drop(ref))], {0: ctx.axis(ref, axis)})


# from the output shapes: split sizes as an attribute (2) or input (13), num_outputs (18);
# Split 1 is not run by onnxruntime
@register("Split", (2, 11, 13, 18))
def split(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    axis = int(a.get("axis", 0))
    sizes = [ctx.shape(o)[axis if axis >= 0 else axis + ctx.rank(x)] for o in node.outputs]
    sizes[-1] = -233
    ctx.add("Slice", [ctx.blob(x)], [ctx.out(o, ctx.drop(x)) for o in node.outputs],
            {0: sizes, 1: ctx.axis(x, axis)})


def _flip(ctx, x, y, starts, ends, axes, steps):
    """x[::-1] on whole axes -> Flip 0=axes (ncnn axes, outermost first)."""
    r, shp = ctx.rank(x), ctx.shape(x)
    flip = []
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax = ax + r if ax < 0 else ax
        dim = shp[ax]
        if st == 1 and s in (0, -dim) and e >= dim:
            continue
        start = s + dim if s < 0 else s
        if st != -1 or start < dim - 1 or e >= -dim:
            ctx.fail("Slice with a negative step is mapped to ncnn only as a whole-axis flip "
                     "(x[::-1])")
        if dim == 1:
            continue
        flip.append(ctx.axis(x, ax))
    if not flip:
        return ctx.alias(y, ctx.blob(x), ctx.drop(x))
    ctx.add("Flip", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))], {0: sorted(flip)})


def _crop(ctx, x, starts, ends, axes, y, drop):
    return ctx.add("Crop", [ctx.blob(x)], [ctx.out(y, drop)],
                   {9: starts, 10: ends, 11: axes})


# An end at or past this is "to the end" whatever the axis' size (exporters write INT64_MAX
# or INT32_MAX).
_TO_THE_END = 2**31 - 1


@register("Slice", (10, 11, 13))  # 1: starts/ends/axes attributes
def slice_(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    starts = [int(v) for v in ctx.need_const(node.inputs[1], "Slice starts")]
    ends = [int(v) for v in ctx.need_const(node.inputs[2], "Slice ends")]
    r = ctx.rank(x)
    axes = ([int(v) for v in ctx.need_const(node.inputs[3], "Slice axes")]
            if len(node.inputs) > 3 and node.inputs[3] is not None else list(range(len(starts))))
    steps = ([int(v) for v in ctx.need_const(node.inputs[4], "Slice steps")]
             if len(node.inputs) > 4 and node.inputs[4] is not None else [1] * len(starts))
    shp = ctx.shape(x)
    if any(s < 1 for s in steps):
        return _flip(ctx, x, y, starts, ends, axes, steps)
    dyn = ctx.probe.shape_varies.get(x.name)
    ns, ne, na, strided = [], [], [], {}
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax = ax + r if ax < 0 else ax
        dim = shp[ax]
        if ctx.drop(x) and ax == 0:
            if not (s in (0, -1 * dim) and e >= 1):
                ctx.fail("Slice on the batch axis")
            continue
        s = max(-dim, min(s, dim))
        varies = dyn is not None and dyn[ax]
        from_start = s == 0 or (s == -dim and not varies)
        if st == 1 and from_start and (e >= _TO_THE_END or (e >= dim and not varies)):
            continue  # the whole axis: nothing to crop (GhostNet's concat[:, :out])
        if e >= dim:
            # "to the end" of an axis whose size varies; a fixed end stays fixed
            e = (-233 if e >= _TO_THE_END else e) if varies else dim
        elif e < -dim:
            e = 0
        if st != 1:
            strided[ctx.axis(x, ax)] = st
        ns.append(s)
        ne.append(e)
        na.append(ctx.axis(x, ax))
    if not na:
        return ctx.alias(y, ctx.blob(x), ctx.drop(x))
    if not strided:
        return _crop(ctx, x, ns, ne, na, y, ctx.drop(x))
    crop_shape = list(ctx.nshape(x))
    for s, e, ax in zip(ns, ne, na):
        dim = crop_shape[ax]
        s = min(max(s + dim if s < 0 else s, 0), dim)
        e = dim if e == -233 else min(max(e + dim if e < 0 else e, 0), dim)
        crop_shape[ax] = max(0, e - s)
    cropped = ctx.g.unique(y.name + "_range")
    ctx.add("Crop", [ctx.blob(x)], [cropped], {9: ns, 10: ne, 11: na})
    _stride(ctx, cropped, crop_shape, y, strided)


def _stride(ctx, blob, in_shape, y, strided: dict):
    """Every step-th element along the ncnn axes in ``strided`` (at most 2): the axes are
    permuted innermost and taken by a 1x1 Pooling with that stride (exact: max of one value)."""
    if len(strided) > 2:
        ctx.fail("Slice with steps on more than 2 axes is not mapped to ncnn")
    out_shape = list(ctx.nshape(y))
    n = len(out_shape)
    if len(in_shape) != n:
        ctx.fail("strided Slice that changes the rank is not mapped to ncnn")
    axes = sorted(strided)
    others = [i for i in range(n) if i not in strided]
    order = others + axes
    inner = [in_shape[i] for i in axes]
    outer = int(np.prod([in_shape[i] for i in others])) if others else 1
    cur = blob
    if order != list(range(n)):
        if n > 4:
            ctx.fail("strided Slice of more than 4 dims")
        cur = ctx.add("Permute", [cur], [ctx.g.unique(y.name + "_inner")],
                      {0: permute_type(order)})
    if len(inner) == 1:
        inner = [1] + inner
    sh, sw = (1, strided[axes[0]]) if len(axes) == 1 else (strided[axes[0]], strided[axes[1]])
    cur = ctx.add("Reshape", [cur], [ctx.g.unique(y.name + "_3d")],
                  reshape_params(ctx, [outer] + inner, None))
    # Pooling 0=type(max) 1=kernel_w 11=kernel_h 2=stride_w 12=stride_h 5=pad_mode(valid)
    cur = ctx.add("Pooling", [cur], [ctx.g.unique(y.name + "_strided")],
                  {0: 0, 1: 1, 11: 1, 2: sw, 12: sh, 5: 1})
    permuted = [out_shape[i] for i in order]
    if order != list(range(n)):
        cur = ctx.add("Reshape", [cur], [ctx.g.unique(y.name + "_unmerged")],
                      reshape_params(ctx, permuted, None))
        inv = [order.index(i) for i in range(n)]
        ctx.add("Permute", [cur], [ctx.out(y, ctx.drop(y))], {0: permute_type(inv)})
    else:
        ctx.add("Reshape", [cur], [ctx.out(y, ctx.drop(y))],
                reshape_params(ctx, out_shape, None))


def _embed(ctx, table, idx, y):
    """Rows of a constant 2-D table picked by indices computed at run time.  ncnn's Embed reads
    its indices as int32 bits, but ncnn blobs fed from outside are float, so the rows are
    picked by a one-hot product instead, exact for indices below 2**24: the ids as a column
    (T, 1), minus a MemoryData row 0..V-1, |.|, 1 - that, Clip 0..1 (a one-hot (T, V)), then
    Gemm with the table as constant B (2=transA 3=transB 4/5=constantA/B 8=N 9=K; B stored
    (N, K) tagged)."""
    T = np.asarray(table, np.float32)
    if T.ndim != 2:
        ctx.fail("Gather with run-time indices is mapped to ncnn for a 2-D constant table")
    V, D = T.shape
    ids = ctx.blob(idx)
    col = ctx.add("Reshape", [ids], [ctx.g.unique(y.name + "_ids")], {0: 1, 1: -1})
    row = ctx.memory_data(np.arange(V, dtype=np.float32).reshape(1, V), y.name + "_vocab")
    cur = ctx.add("BinaryOp", [col, row], [ctx.g.unique(y.name + "_diff")], {0: 1})
    for typ, p in (("UnaryOp", {0: 0}), ("BinaryOp", {0: 7, 1: 1, 2: 1.0}),
                   ("Clip", {0: 0.0, 1: 1.0})):
        cur = ctx.add(typ, [cur], [ctx.g.unique(y.name + "_onehot")], p)
    ydrop = ctx.drop(idx)
    oshape = ctx.nshape(y) if ydrop else ctx.shape(y)
    direct = len(oshape) == 2
    rows = ctx.add("Gemm", [cur], [ctx.out(y, ydrop) if direct
                                   else ctx.g.unique(y.name + "_rows")],
                   {2: 0, 3: 1, 4: 0, 5: 1, 6: 0, 8: int(D), 9: int(V)},
                   [Weight(np.ascontiguousarray(T.T), flagged=True)])
    if not direct:
        if len(oshape) > 4:
            ctx.fail("Gather result of more than 4 dims")
        ctx.add("Reshape", [rows], [ctx.out(y, ydrop)], reshape_params(ctx, oshape, None))


def gather_const(ctx, x, axis: int, ind: np.ndarray, y):
    """x.take(ind, axis) for constant indices: one Crop (9=starts 10=ends 11=axes) per run of
    consecutive indices, a Concat (0=axis) of them, and a Reshape where the indices have
    other than one dim."""
    dim = ctx.shape(x)[axis]
    flat = [int(i) % dim for i in np.ravel(ind)]
    if ctx.drop(x) and axis == 0:
        ctx.fail("Gather of several entries of the batch axis, which ncnn does not have")
    nax = ctx.axis(x, axis)
    runs = []
    for i in flat:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    src = ctx.blob(x)
    parts = [ctx.add("Crop", [src], [ctx.g.unique(f"{y.name}_r{k}")],
                     {9: [s], 10: [e], 11: [nax]}) for k, (s, e) in enumerate(runs)]
    ydrop = ctx.drop(x)
    same_rank = np.ndim(ind) == 1
    if same_rank and len(parts) == 1:
        last = ctx.g.layers[-1]
        last.tops = [ctx.out(y, ydrop)]
        return last.tops[0]
    if len(parts) > 1:
        cat = ctx.add("Concat", parts, [ctx.out(y, ydrop) if same_rank
                                        else ctx.g.unique(y.name + "_cat")], {0: nax})
    else:
        cat = parts[0]
    if same_rank:
        return cat
    ys = ctx.shape(y)
    ydrop = ydrop and len(ys) >= 1 and ys[0] == 1
    if len(ys) - int(ydrop) > 4:
        ctx.fail("Gather result of more than 4 dims")
    return ctx.add("Reshape", [cat], [ctx.out(y, ydrop)],
                   reshape_params(ctx, (ys[1:] if ydrop else ys) or (1,), None))


@register("GatherND", (11, 12, 13))
def gather_nd(ctx, node):
    """GatherND with constant indices (batch_dims 0): the first k axes are merged and the
    entries taken by ``gather_const`` on that axis."""
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ind = ctx.const(idx)
    if ind is None or int(attrs_of(node).get("batch_dims", 0)):
        ctx.fail("GatherND is mapped to ncnn for constant indices and batch_dims=0")
    ind = np.asarray(ind, np.int64)
    xs = ctx.shape(x)
    k = ind.shape[-1]
    dims = xs[:k]
    flat = np.ravel_multi_index(tuple(np.moveaxis(ind % np.asarray(dims), -1, 0)), dims)
    src = x
    if k != 1:
        merged = (int(np.prod(dims)),) + tuple(xs[k:])
        src = ctx.temp(x.name + "_merged", merged)
        drop = ctx.drop(x) and merged[0] == 1
        emit_reshape(ctx, x, src, drop=drop)
    gather_const(ctx, src, 0, flat, y)


@register("Gather", (1, 11, 13))
def gather(ctx, node):
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ind = ctx.const(idx)
    axis = int(attrs_of(node).get("axis", 0))
    if ind is None and ctx.is_const(x) and axis == 0:
        return _embed(ctx, ctx.const(x), idx, y)
    if ind is not None and np.asarray(ind).size != 1 and not ctx.is_const(x):
        return gather_const(ctx, x, axis + ctx.rank(x) if axis < 0 else axis, ind, y)
    if ind is None or np.asarray(ind).size != 1 or ctx.is_const(x):
        ctx.fail("Gather is mapped to ncnn with constant indices, or run-time indices into a "
                 "constant 2-D table (Embed)")
    r = ctx.rank(x)
    axis = axis + r if axis < 0 else axis
    i = int(np.asarray(ind).ravel()[0])
    i = i + ctx.shape(x)[axis] if i < 0 else i
    if axis == 0 and ctx.drop(x):  # x[0] of a batch of 1: the same data, no batch axis
        return ctx.alias(y, ctx.blob(x), np.asarray(ind).ndim == 1)
    mid_shape_val = y
    crop = ctx.g.unique(y.name + "_crop")
    ctx.add("Crop", [ctx.blob(x)], [crop], {9: [i], 10: [i + 1], 11: [ctx.axis(x, axis)]})
    if np.asarray(ind).ndim == 1:
        return ctx.alias(y, crop, ctx.drop(x))
    out = ctx.out(mid_shape_val, ctx.drop(x) if axis != 0 else None)
    oshape = ctx.nshape(y) or (1,)
    ctx.add("Reshape", [crop], [out], reshape_params(ctx, oshape, None))


# 1: a paddings attribute; 2: pads and value attributes; 11: inputs; 18: axes; 19: wrap mode
# (refused)
@register("Pad", (2, 11, 13, 18, 19, 21, 23, 24, 25))
def pad(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    mode = a.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = [int(v) for v in (ctx.need_const(node.inputs[1], "Pad pads")
                             if len(node.inputs) > 1 else a.get("pads"))]
    value = float(a.get("value", 0.0))  # Pad 2
    if len(node.inputs) > 2 and node.inputs[2] is not None and node.inputs[2].name:
        value = float(np.asarray(ctx.need_const(node.inputs[2], "Pad value")).ravel()[0])
    r = ctx.rank(x)
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        axes = [int(v) % r for v in ctx.need_const(node.inputs[3], "Pad axes")]
        full = [0] * (2 * r)
        for j, ax in enumerate(axes):
            full[ax], full[ax + r] = pads[j], pads[j + len(axes)]
        pads = full
    begin, end = pads[:r], pads[r:]
    typ = {"constant": 0, "edge": 1, "reflect": 2}.get(mode)
    if typ is None:
        ctx.fail(f"Pad mode {mode!r} has no ncnn equivalent")
    if ctx.drop(x):
        if begin[0] or end[0]:
            ctx.fail("Pad of the batch axis, which ncnn does not have")
        begin, end = begin[1:], end[1:]
    elif ctx.merged(x):  # (N, C, D, H, W) held as (N*C, D, H, W): D, H and W only
        if any(begin[:2]) or any(end[:2]):
            ctx.fail("Pad of the batch or channel axis of a rank-5 tensor with a batch of "
                     f"{ctx.merged(x)}, held as N*C ncnn channels, has no exact ncnn mapping")
        begin, end = [0] + begin[2:], [0] + end[2:]
    n = len(begin)
    if any(begin[:-3]) or any(end[:-3]) or n > 4:
        ctx.fail(f"Pad of the outermost axis of a {n}-D ncnn blob (ncnn pads w, h and the "
                 "next one out)")
    # Padding 2=left 3=right on w, 0=top 1=bottom on h, 7=front 8=behind on the next axis
    # out (c of a 3-D blob, d of a 4-D one)
    p = {4: typ, 5: value}
    for (kb, ke), i in zip(((2, 3), (0, 1), (7, 8)), range(n - 1, -1, -1)):
        p[kb], p[ke] = begin[i], end[i]
    ctx.add("Padding", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))], p)


# 1: ``to`` a string; 19 and later: saturate/round_mode and types for float8 and narrower
# targets, which are refused
@register("Cast", (6, 9, 13, 19, 21, 23, 24, 25, 28))
def cast(ctx, node):
    """ncnn computes in float: a cast to a float type is the identity; other casts of
    activations have no ncnn layer (casts of shape arithmetic were folded into params)."""
    import onnx_ir as ir

    to = int(attrs_of(node)["to"])
    x, y = node.inputs[0], node.outputs[0]
    T = ir.DataType
    src_float = x.dtype is None or x.dtype.is_floating_point()
    if to == T.BOOL and src_float:  # x != 0: step(|x|) (see op_compare)
        from .common import STEP as _STEP

        ctx.unary("UnaryOp", {0: 0})
        return ctx.then(y, _STEP)
    if to in (T.INT8, T.INT16, T.INT32, T.INT64, T.UINT8, T.UINT16, T.UINT32, T.UINT64) \
            and src_float:  # toward zero: UnaryOp 19=trunc
        return ctx.unary("UnaryOp", {0: 19})
    if to not in (T.FLOAT, T.FLOAT16, T.DOUBLE, T.BFLOAT16, T.BOOL, T.INT8, T.INT16, T.INT32,
                  T.INT64, T.UINT8, T.UINT16, T.UINT32, T.UINT64):
        ctx.fail(f"Cast of an activation to {ir.DataType(to).name} has no ncnn "
                 "equivalent (ncnn computes in float)")
    ctx.alias(y, ctx.blob(x), ctx.drop(x))


_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Where"}


@register("Expand", (8, 13))
def expand(ctx, node):
    """Expand read only by broadcasting ops is the identity (they broadcast themselves);
    otherwise x is added to zeros of the target shape (BinaryOp broadcasts it)."""
    x, y = node.inputs[0], node.outputs[0]
    cons = ctx.consumers.get(y.name, [])
    if ctx.shape(x) == ctx.shape(y) or (
            y.name not in ctx.graph_outputs and cons and all(
                c.op_type in _BROADCASTING and all(
                    v is y or v is None or ctx.shape(v) == ctx.shape(y) for v in c.inputs)
                for c in cons)):
        return ctx.alias(y, ctx.blob(x), ctx.drop(x) if ctx.rank(x) == ctx.rank(y) else None)
    if ctx.rank(x) < ctx.rank(y):  # numpy alignment: leading 1s first, then broadcast
        xs = (1,) * (ctx.rank(y) - ctx.rank(x)) + tuple(ctx.shape(x))
        lifted = ctx.temp(x.name + "_lifted", xs)
        keep_drop = ctx.drop(y)
        ctx.add("Reshape", [ctx.blob(x)], [ctx.out(lifted, keep_drop)],
                reshape_params(ctx, xs[1:] if keep_drop else xs, None))
        x = lifted
    if ctx.rank(x) != ctx.rank(y):
        ctx.fail("Expand to fewer dims than its input is not valid ONNX")
    zeros = np.zeros(ctx.nshape(y) if ctx.drop(y) else ctx.shape(y), np.float32)
    ctx.add("BinaryOp", [ctx.blob(x), ctx.memory_data(zeros, y.name)], [ctx.out(y, ctx.drop(x))],
            {0: 0})


@register("Tile", (6, 13))  # 1: tiles and axis inputs
def tile(ctx, node):
    """Tile 2=repeats (one per ncnn dim, outermost first)."""
    x, y = node.inputs[0], node.outputs[0]
    reps = [int(v) for v in ctx.need_const(node.inputs[1], "Tile repeats")]
    if ctx.drop(x):
        if reps[0] != 1:
            ctx.fail("Tile repeats the batch axis, which ncnn does not have")
        reps = reps[1:]
    ctx.add("Tile", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))], {2: reps})


@register("DepthToSpace", (1, 11, 13, 28))  # 11: mode
def depth_to_space(ctx, node):
    """PixelShuffle 0=upscale_factor 1=mode (0: channel p*r*r + i*r + j, ONNX CRD;
    1: channel (i*r + j)*C + p, ONNX DCR)."""
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    mode = a.get("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    ctx.per_sample(x, y, lambda src, dst: ctx.add(
        "PixelShuffle", [src], [dst], {0: int(a["blocksize"]), 1: 0 if mode == "CRD" else 1}))


@register("SpaceToDepth", (1, 13, 28))  # 28: mode
def space_to_depth(ctx, node):
    """Reorg 0=stride 1=mode (1: output channel (i*r + j)*C + c, as ONNX)."""
    x, y = node.inputs[0], node.outputs[0]
    mode = attrs_of(node).get("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "DCR":
        ctx.fail(f"SpaceToDepth mode {mode!r} is not mapped to ncnn (DCR is)")
    ctx.per_sample(x, y, lambda src, dst: ctx.add(
        "Reorg", [src], [dst], {0: int(attrs_of(node)["blocksize"]), 1: 1}))


@register("ScatterND", (11, 13, 16, 18))  # 16, 18: reduction (refused)
def scatter_nd(ctx, node):
    """ScatterND with constant indices that address a box, a contiguous range on each indexed
    axis in C order (slice assignment, ``x[a:b, ..., c:d] = u``, as both exporters write it):
    along each axis whose range is not the whole axis, the data before the range, the part
    inside it (the next axis's result, the updates at the last) and the data after it, joined
    by Concat 0=axis; the data parts are Crops (9=starts 10=ends 11=axes)."""
    data, idx, upd = node.inputs
    y = node.outputs[0]
    ind = ctx.const(idx)
    red = attrs_of(node).get("reduction", "none")
    red = red.decode() if isinstance(red, bytes) else red
    shape = [int(d) for d in ctx.shape(data)]
    box = None if ind is None or red != "none" else _index_box(np.asarray(ind), shape)
    if box is None:
        ctx.fail("ScatterND is mapped to ncnn for constant indices that address a box (one "
                 "contiguous range per indexed axis, as slice assignment writes)")
    k, drop = len(box), ctx.drop(data)
    box_shape = [e - s for s, e in box] + shape[k:]
    tgt = box_shape[1:] if drop else box_shape
    cu = ctx.const(upd)
    if cu is not None:
        ublob = ctx.memory_data(np.asarray(cu, np.float32).reshape(tgt), upd.name)
    elif list(ctx.nshape(upd)) == list(tgt) and ctx.drop(upd) == drop:
        ublob = ctx.blob(upd)
    else:
        ublob = ctx.add("Reshape", [ctx.blob(upd)], [ctx.g.unique(upd.name + "_box")],
                        reshape_params(ctx, tgt, None))
    axes = [i for i, (s, e) in enumerate(box) if (s, e) != (0, shape[i])]
    if not axes:
        if y.name in ctx.graph_outputs or cu is not None or ublob != ctx.blob_of.get(upd.name):
            return ctx.add("Noop", [ublob], [ctx.out(y, drop)])
        return ctx.alias(y, ublob, drop)

    def crop(src, i, s, e, tag):
        return ctx.add("Crop", [src], [ctx.g.unique(f"{y.name}_{tag}{i}")],
                       {9: [s], 10: [e], 11: [ctx.axis(data, i)]})

    def compose(level, src, top):
        i = axes[level]
        s, e = box[i]
        inner = ublob if level == len(axes) - 1 else compose(level + 1, crop(src, i, s, e, "in"),
                                                             ctx.g.unique(f"{y.name}_mid{i}"))
        parts = ([crop(src, i, 0, s, "head")] if s > 0 else []) + [inner] + \
            ([crop(src, i, e, shape[i], "tail")] if e < shape[i] else [])
        return ctx.add("Concat", parts, [top], {0: ctx.axis(data, i)})

    compose(0, ctx.blob(data), ctx.out(y, drop))


def _index_box(ind: np.ndarray, shape) -> list[tuple[int, int]] | None:
    """[(start, end)] per indexed axis when the ScatterND indices ``ind`` (..., k) list every
    point of a box of contiguous ranges in C order (so the updates are that box), else None."""
    if ind.ndim < 1 or ind.shape[-1] < 1 or ind.shape[-1] > len(shape) or ind.size == 0:
        return None
    k = ind.shape[-1]
    dims = np.asarray(shape[:k], np.int64)
    pts = np.asarray(ind, np.int64).reshape(-1, k)
    if np.any(pts < -dims) or np.any(pts >= dims):
        return None
    pts = pts % dims
    ranges = [np.unique(pts[:, j]) for j in range(k)]
    if any(np.any(np.diff(r) != 1) for r in ranges) or \
            pts.shape[0] != int(np.prod([len(r) for r in ranges])):
        return None
    grid = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, k)
    if not np.array_equal(grid, pts):
        return None
    return [(int(r[0]), int(r[-1]) + 1) for r in ranges]
