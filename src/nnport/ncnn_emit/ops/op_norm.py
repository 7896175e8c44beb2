"""Normalization layers.

ncnn params: BatchNorm 0=channels 1=eps, weights slope/mean/var/bias (raw); LayerNorm
0=affine_size 1=eps 2=affine, gamma/beta (raw); InstanceNorm 0=channels 1=eps 2=affine;
GroupNorm 0=group 1=channels 2=eps 3=affine, gamma/beta (raw).
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from . import register
from ..emit import attrs_of


@register("BatchNormalization")
def batchnorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    if a.get("training_mode", 0):
        ctx.fail("training-mode BatchNormalization has no ncnn equivalent")
    scale, bias, mean, var = (np.asarray(ctx.need_const(v, "BatchNormalization statistics"),
                                         np.float32) for v in node.inputs[1:5])
    c = scale.size
    ctx.add("BatchNorm", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))],
            {0: c, 1: float(a.get("epsilon", 1e-5))},
            [Weight(scale), Weight(mean), Weight(var), Weight(bias)])


@register("LayerNormalization")
def layernorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    r = ctx.rank(x)
    axis = int(a.get("axis", -1))
    axis = axis + r if axis < 0 else axis
    nsh = ctx.nshape(x)
    n_norm = r - axis
    if n_norm not in (1, 2) or (n_norm == 2 and len(nsh) != 3):
        ctx.fail(f"LayerNormalization over the last {n_norm} axes of a rank-{r} tensor is not "
                 "mapped to ncnn (last axis, or last two of a 3-D blob)")
    size = int(np.prod(ctx.shape(x)[axis:]))
    gamma = np.asarray(ctx.need_const(node.inputs[1], "LayerNorm scale"), np.float32)
    beta = (np.asarray(ctx.need_const(node.inputs[2], "LayerNorm bias"), np.float32)
            if len(node.inputs) > 2 and node.inputs[2] is not None else np.zeros(size, np.float32))
    gamma = np.broadcast_to(gamma, ctx.shape(x)[axis:]).ravel()
    beta = np.broadcast_to(beta, ctx.shape(x)[axis:]).ravel()
    if any(o is not None and o.name for o in node.outputs[1:]):
        ctx.fail("LayerNormalization mean/inv_std outputs have no ncnn equivalent")
    ctx.add("LayerNorm", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))],
            {0: size, 1: float(a.get("epsilon", 1e-5)), 2: 1}, [Weight(gamma), Weight(beta)])


@register("InstanceNormalization")
def instancenorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    gamma = np.asarray(ctx.need_const(node.inputs[1], "InstanceNorm scale"), np.float32)
    beta = np.asarray(ctx.need_const(node.inputs[2], "InstanceNorm bias"), np.float32)
    ctx.add("InstanceNorm", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))],
            {0: gamma.size, 1: float(a.get("epsilon", 1e-5)), 2: 1},
            [Weight(gamma), Weight(beta)])


@register("GroupNormalization")
def groupnorm(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    groups = int(a["num_groups"])
    c = ctx.shape(x)[1]
    gamma = np.asarray(ctx.need_const(node.inputs[1], "GroupNorm scale"), np.float32)
    beta = np.asarray(ctx.need_const(node.inputs[2], "GroupNorm bias"), np.float32)
    if gamma.size == groups and groups != c:  # opset 18: per-group scale
        gamma, beta = np.repeat(gamma, c // groups), np.repeat(beta, c // groups)
    ctx.add("GroupNorm", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))],
            {0: groups, 1: c, 2: float(a.get("epsilon", 1e-5)), 3: 1},
            [Weight(gamma), Weight(beta)])
