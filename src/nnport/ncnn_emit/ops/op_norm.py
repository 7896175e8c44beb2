"""Normalization layers.

ncnn params: BatchNorm 0=channels 1=eps, weights slope/mean/var/bias (raw); LayerNorm
0=affine_size 1=eps 2=affine, gamma/beta (raw); InstanceNorm 0=channels 1=eps 2=affine;
GroupNorm 0=group 1=channels 2=eps 3=affine, gamma/beta (raw).
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from ..registry import register
from .common import attrs_of


# 1 and 6 had is_test (0 trains), which onnxruntime does not run; 7 and 8 have spatial (0:
# statistics per activation, refused); 7 and 9 compute training statistics when those outputs
# are asked for, 14 when training_mode is set (refused)
@register("BatchNormalization", (7, 9, 14, 15))
def batchnorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    if a.get("training_mode", 0) or any(o is not None and o.name for o in node.outputs[1:]):
        ctx.fail("training-mode BatchNormalization has no ncnn equivalent")
    if not a.get("spatial", 1):
        ctx.fail("BatchNormalization with spatial=0 (statistics per activation) is not mapped "
                 "to ncnn")
    scale, bias, mean, var = (np.asarray(ctx.need_const(v, "BatchNormalization statistics"),
                                         np.float32) for v in node.inputs[1:5])
    c = scale.size
    if ctx.merged(x):  # a rank-5 batch of N held as N*C channels: the statistics repeat
        scale, bias, mean, var = (np.tile(t.ravel(), ctx.merged(x))
                                  for t in (scale, bias, mean, var))
    elif ctx.rank(x) >= 2 and not ctx.drop(x):
        # (N, C, ...) with N > 1 (e.g. tokens as the batch, LeViT): per-channel scale and shift
        # as two broadcasting BinaryOps
        from .common import scale_shift

        k = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        shape = (c,) + (1,) * (ctx.rank(x) - 2)
        return scale_shift(ctx, x, k.reshape(shape), (bias - mean * k).reshape(shape),
                           node.outputs[0])
    ctx.add("BatchNorm", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))],
            {0: scale.size, 1: float(a.get("epsilon", 1e-5))},
            [Weight(scale), Weight(mean), Weight(var), Weight(bias)])


@register("LayerNormalization", 17)
def layernorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    r = ctx.rank(x)
    axis = int(a.get("axis", -1))
    axis = axis + r if axis < 0 else axis
    nsh = ctx.nshape(x)
    n_norm = r - axis
    if ctx.drop(x) and axis == 0:
        ctx.fail("LayerNormalization over the batch axis")
    size = int(np.prod(ctx.shape(x)[axis:]))
    # ncnn's LayerNorm normalizes the last axis, or the last two of a 3-D blob; other cases
    # merge the normalized axes into one around it (Reshape 0=w 1=h 11=d 2=c)
    merge = not (n_norm == 1 or (n_norm == 2 and len(nsh) == 3))
    gamma = np.asarray(ctx.need_const(node.inputs[1], "LayerNorm scale"), np.float32)
    beta = (np.asarray(ctx.need_const(node.inputs[2], "LayerNorm bias"), np.float32)
            if len(node.inputs) > 2 and node.inputs[2] is not None else np.zeros(size, np.float32))
    gamma = gamma.ravel() if gamma.size == size else \
        np.broadcast_to(gamma, ctx.shape(x)[axis:]).ravel()
    beta = beta.ravel() if beta.size == size else \
        np.broadcast_to(beta, ctx.shape(x)[axis:]).ravel()
    if any(o is not None and o.name for o in node.outputs[1:]):
        ctx.fail("LayerNormalization mean/inv_std outputs have no ncnn equivalent")
    p = {0: size, 1: float(a.get("epsilon", 1e-5)), 2: 1}
    w = [Weight(np.ascontiguousarray(gamma)), Weight(np.ascontiguousarray(beta))]
    y = node.outputs[0]
    if not merge:
        return ctx.add("LayerNorm", [ctx.blob(x)], [ctx.out(y, ctx.drop(x))], p, w)
    from .common import reshape_params

    outer = list(nsh[:len(nsh) - n_norm])
    src = ctx.add("Reshape", [ctx.blob(x)], [ctx.g.unique(y.name + "_merged")],
                  reshape_params(ctx, outer + [size], None))
    mid = ctx.add("LayerNorm", [src], [ctx.g.unique(y.name + "_norm")], p, w)
    ctx.add("Reshape", [mid], [ctx.out(y, ctx.drop(x))], reshape_params(ctx, nsh, None))


def _per_channel(ctx, x, y, type_, params, weights):
    """``type_`` normalizes each channel of a 3-D ncnn blob (c, h, w); other ranks (N, C, L),
    (N, C, D, H, W)... are viewed as (C, 1, L) around it."""
    nsh = tuple(ctx.shape(x)[1:])  # one sample (C, spatial...)
    if len(nsh) == 3:
        return ctx.per_sample(x, y, lambda src, dst: ctx.add(type_, [src], [dst], params,
                                                             weights))
    from .common import reshape_params

    c = int(nsh[0])
    dyn = ctx.probe.shape_varies.get(y.name)
    nd = None if dyn is None or not ctx.drop(x) else list(dyn[1:])

    def one(src, dst):
        flat = ctx.add("Reshape", [src], [ctx.g.unique(y.name + "_c1l")], {0: -1, 1: 1, 2: c})
        mid = ctx.add(type_, [flat], [ctx.g.unique(y.name + "_norm")], params, weights)
        return ctx.add("Reshape", [mid], [dst], reshape_params(ctx, nsh, nd))

    ctx.per_sample(x, y, one)


def _per_channel_const(ctx, v, c, rank):
    """A constant that is one value per channel of a (1, C, ...) tensor, else None."""
    k = ctx.const(v)
    if k is None:
        return None
    k = np.asarray(k, np.float32)
    if k.ndim > rank or k.size != c:
        return None
    shp = (1,) * (rank - k.ndim) + k.shape
    if shp[1] != c:
        return None
    return k.reshape(c)


def _torch_group_norm(ctx, node, gamma, beta, eps) -> bool:
    """torch's GroupNorm export: Reshape (1,C,...)->(1,G,L), InstanceNormalization with unit
    scale, Reshape back, then Mul/Add by per-channel constants -> one ncnn GroupNorm."""
    r = node.inputs[0]
    pre = r.producer()
    if pre is None or pre.op_type != "Reshape" or ctx.single_consumer(r) is not node:
        return False
    x = pre.inputs[0]
    xs, rs = ctx.shape(x), ctx.shape(r)
    if len(xs) < 3 or len(rs) != 3 or not ctx.drop(x) or not ctx.drop(r):
        return False
    groups, c = rs[1], xs[1]
    if c % groups or gamma.size != groups or np.any(gamma != 1) or np.any(beta != 0):
        return False
    post = ctx.single_consumer(node.outputs[0])
    if post is None or post.op_type != "Reshape" or ctx.shape(post.outputs[0]) != xs:
        return False

    def per_channel(v, node):
        return _per_channel_const(ctx, v, c, len(xs)) if ctx.shape(node.outputs[0]) == xs \
            else None

    g, b, tail, y = ctx.affine_tail(post.outputs[0], per_channel)
    g = np.ones(c, np.float32) if g is None else g
    b = np.zeros(c, np.float32) if b is None else b
    chain = [post] + tail
    # the first Reshape was already emitted; it is read by nothing else: drop it
    rblob = ctx.blob_of.get(r.name)
    for layer in list(ctx.g.layers):
        if layer.type == "Reshape" and layer.tops == [rblob]:
            ctx.g.layers.remove(layer)
    for n in chain:
        ctx.skip.add(id(n))
    _per_channel(ctx, x, y, "GroupNorm", {0: int(groups), 1: int(c), 2: eps, 3: 1},
                 [Weight(g), Weight(b)])
    return True


@register("InstanceNormalization", (6, 22))
def instancenorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    if ctx.rank(x) < 3:
        ctx.fail("InstanceNormalization needs (N, C, spatial...) input")
    gamma = np.asarray(ctx.need_const(node.inputs[1], "InstanceNorm scale"), np.float32)
    beta = np.asarray(ctx.need_const(node.inputs[2], "InstanceNorm bias"), np.float32)
    if _torch_group_norm(ctx, node, gamma, beta, float(a.get("epsilon", 1e-5))):
        return
    _per_channel(ctx, x, node.outputs[0], "InstanceNorm",
                 {0: gamma.size, 1: float(a.get("epsilon", 1e-5)), 2: 1},
                 [Weight(gamma.ravel()), Weight(beta.ravel())])


# 18: scale and bias per group (deprecated), 21: per channel, and stash_type (float32 here)
@register("GroupNormalization", (18, 21))
def groupnorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    if ctx.rank(x) < 3:
        ctx.fail("GroupNormalization needs (N, C, spatial...) input")
    groups = int(a["num_groups"])
    c = ctx.shape(x)[1]
    gamma = np.asarray(ctx.need_const(node.inputs[1], "GroupNorm scale"), np.float32).ravel()
    beta = np.asarray(ctx.need_const(node.inputs[2], "GroupNorm bias"), np.float32).ravel()
    if gamma.size == groups and groups != c:  # opset 18: per-group scale
        gamma, beta = np.repeat(gamma, c // groups), np.repeat(beta, c // groups)
    _per_channel(ctx, x, node.outputs[0], "GroupNorm",
                 {0: groups, 1: c, 2: float(a.get("epsilon", 1e-5)), 3: 1},
                 [Weight(gamma), Weight(beta)])
