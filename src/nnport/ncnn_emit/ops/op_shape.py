"""Reshape/Flatten/Squeeze/Unsqueeze -> Reshape or Flatten; Transpose -> Permute; Concat;
Split -> Slice; Slice/Gather(scalar index) -> Crop; Pad -> Padding.

ncnn params: Reshape 0=w 1=h 11=d 2=c (0 = copy from bottom, -1 = remaining, -233 = absent);
Flatten (none); Permute 0=order_type (index of the axis order among all orders, outermost
first); Concat 0=axis; Slice -23300 0=slices array (-233 = rest) 1=axis; Crop -23309 9=starts
-23310 10=ends -23311 11=axes; Padding 0=top 1=bottom 2=left 3=right 4=type (0 constant
1 replicate 2 reflect) 5=value 7=front 8=behind.
"""
from __future__ import annotations

import itertools

import numpy as np

from . import register
from ..emit import attrs_of

KEYS = [0, 1, 11, 2]  # w, h, d, c: innermost first


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


def _ndyn(ctx, v):
    m = ctx.probe.shape_varies.get(v.name)
    if m is None:
        return None
    m = list(m)
    return m[1:] if ctx.drop(v) else m


def emit_reshape(ctx, x, y, drop=None):
    ydrop = ctx.drop(y) if drop is None else drop
    out = ctx.out(y, ydrop)
    oshape = ctx.nshape(y)
    if len(oshape) == 0:
        oshape = (1,)
    if len(oshape) == 1 and ctx.drop(x):
        return ctx.add("Flatten", [ctx.blob(x)], [out])
    p = reshape_params(ctx, oshape, _ndyn(ctx, y), ctx.nshape(x), _ndyn(ctx, x))
    return ctx.add("Reshape", [ctx.blob(x)], [out], p)


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    if ctx.shape(x) == ctx.shape(y):
        return ctx.alias(y, ctx.blob(x), ctx.drop(x)) if y.name not in ctx.graph_outputs \
            else ctx.unary("Noop")
    if len(ctx.shape(x)) >= 1 and ctx.drop(x) and ctx.shape(y) and ctx.shape(y)[0] != 1:
        ctx.fail("reshape moves data into the batch axis, which ncnn does not have")
    emit_reshape(ctx, x, y)


def permute_type(order) -> int:
    return list(itertools.permutations(range(len(order)))).index(tuple(order))


@register("Transpose")
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
    if drop:
        if perm[0] != 0:
            ctx.fail("transpose moves the batch axis, which ncnn does not have")
        perm = [p - 1 for p in perm[1:]]
    if perm == sorted(perm):
        return ctx.alias(y, ctx.blob(x), drop)
    if len(perm) > 4:
        ctx.fail("transpose of more than 4 dims")
    ctx.add("Permute", [ctx.blob(x)], [ctx.out(y, drop)], {0: permute_type(perm)})


@register("Concat")
def concat(ctx, node):
    axis = int(attrs_of(node)["axis"])
    ins = [v for v in node.inputs if v is not None and int(np.prod(ctx.shape(v))) != 0]
    ref = next((v for v in ins if not ctx.is_const(v)), ins[0])
    blobs = [ctx.blob(v) if not ctx.is_const(v) else ctx.blob(v, like=ref) for v in ins]
    ctx.add("Concat", blobs, [ctx.out(node.outputs[0], ctx.drop(ref))], {0: ctx.axis(ref, axis)})


@register("Split")
def split(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    axis = int(a.get("axis", 0))
    sizes = [ctx.shape(o)[axis if axis >= 0 else axis + ctx.rank(x)] for o in node.outputs]
    sizes[-1] = -233
    ctx.add("Slice", [ctx.blob(x)], [ctx.out(o, ctx.drop(x)) for o in node.outputs],
            {0: sizes, 1: ctx.axis(x, axis)})


def _crop(ctx, x, starts, ends, axes, y, drop):
    return ctx.add("Crop", [ctx.blob(x)], [ctx.out(y, drop)],
                   {9: starts, 10: ends, 11: axes})


@register("Slice")
def slice_(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    starts = [int(v) for v in ctx.need_const(node.inputs[1], "Slice starts")]
    ends = [int(v) for v in ctx.need_const(node.inputs[2], "Slice ends")]
    r = ctx.rank(x)
    axes = ([int(v) for v in ctx.need_const(node.inputs[3], "Slice axes")]
            if len(node.inputs) > 3 and node.inputs[3] is not None else list(range(len(starts))))
    steps = ([int(v) for v in ctx.need_const(node.inputs[4], "Slice steps")]
             if len(node.inputs) > 4 and node.inputs[4] is not None else [1] * len(starts))
    if any(s != 1 for s in steps):
        ctx.fail("Slice with steps other than 1 is not mapped to ncnn")
    shp = ctx.shape(x)
    dyn = ctx.probe.shape_varies.get(x.name)
    ns, ne, na = [], [], []
    for s, e, ax in zip(starts, ends, axes):
        ax = ax + r if ax < 0 else ax
        dim = shp[ax]
        if ctx.drop(x) and ax == 0:
            if not (s in (0, -1 * dim) and e >= 1):
                ctx.fail("Slice on the batch axis")
            continue
        s = max(-dim, min(s, dim))
        if e >= dim:
            e = -233 if dyn is not None and dyn[ax] else dim
            if e == dim and (dyn is None or not dyn[ax]):
                pass
        elif e < -dim:
            e = 0
        ns.append(s)
        ne.append(e)
        na.append(ctx.axis(x, ax))
    if not na:
        return ctx.alias(y, ctx.blob(x), ctx.drop(x))
    _crop(ctx, x, ns, ne, na, y, ctx.drop(x))


@register("Gather")
def gather(ctx, node):
    x, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ind = ctx.const(idx)
    if ind is None or np.asarray(ind).size != 1 or ctx.is_const(x):
        ctx.fail("Gather is mapped to ncnn only with one constant index")
    axis = int(attrs_of(node).get("axis", 0))
    r = ctx.rank(x)
    axis = axis + r if axis < 0 else axis
    i = int(np.asarray(ind).ravel()[0])
    i = i + ctx.shape(x)[axis] if i < 0 else i
    mid_shape_val = y
    crop = ctx.g.unique(y.name + "_crop")
    ctx.add("Crop", [ctx.blob(x)], [crop], {9: [i], 10: [i + 1], 11: [ctx.axis(x, axis)]})
    if np.asarray(ind).ndim == 1:
        return ctx.alias(y, crop, ctx.drop(x))
    out = ctx.out(mid_shape_val, ctx.drop(x) if axis != 0 else None)
    oshape = ctx.nshape(y) or (1,)
    ctx.add("Reshape", [crop], [out], reshape_params(ctx, oshape, None))


@register("Pad")
def pad(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    mode = a.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = [int(v) for v in (ctx.need_const(node.inputs[1], "Pad pads")
                             if len(node.inputs) > 1 else a.get("pads"))]
    value = 0.0
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
    if r != 4 or begin[0] or end[0]:
        ctx.fail("Pad is mapped to ncnn for NCHW tensors with no batch padding")
    typ = {"constant": 0, "edge": 1, "reflect": 2}.get(mode)
    if typ is None:
        ctx.fail(f"Pad mode {mode!r} has no ncnn equivalent")
    ctx.add("Padding", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))],
            {0: begin[2], 1: end[2], 2: begin[3], 3: end[3], 4: typ, 5: value,
             7: begin[1], 8: end[1]})
