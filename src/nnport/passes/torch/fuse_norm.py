"""LayerNorm and RMSNorm written out as element-wise chains -> ``nnport::LayerNorm`` /
``nnport::RMSNorm``, printed as ``nn.LayerNorm`` / ``nn.RMSNorm`` (constant weights) or
``F.layer_norm`` / ``F.rms_norm``:

    d = x - mean(x, axes);  y = d / sqrt(mean(d * d, axes) + eps) [* w] [+ b]       LayerNorm
    y = x / sqrt(mean(x * x, axes) + eps) [* w]                                     RMSNorm
        (also x * reciprocal(sqrt(...)), x * (1 / sqrt(...)), w * (...))

``axes`` must be the trailing axes of an input of known rank (``F.layer_norm`` normalizes the
last dims; a channels-first LayerNorm stays as written), ``keepdims=1``, ``eps`` a scalar.
The affine part is folded in only when the weight/bias fit the normalized shape exactly.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ..match import (DOMAIN, FLOATS, finish, is_op, other, product, replace_output, scalar,
                    single_user)


def _mean_axes(node: ir.Node) -> tuple[int, ...] | None:
    """Normalized axes of a ReduceMean with keepdims=1 over the trailing axes of its input."""
    x = node.inputs[0]
    if x is None or x.shape is None or x.dtype not in FLOATS:
        return None
    kd = node.attributes.get("keepdims")
    if kd is not None and kd.as_int() != 1:
        return None
    ax = node.attributes.get("axes")
    if ax is not None:
        axes = list(ax.as_ints())
    elif len(node.inputs) > 1 and node.inputs[1] is not None:
        c = node.inputs[1].const_value
        if c is None:
            return None
        axes = [int(a) for a in c.numpy().reshape(-1)]
    else:
        return None
    r = len(x.shape)
    axes = sorted(a + r if a < 0 else a for a in axes)
    if not axes or axes != list(range(r - len(axes), r)):
        return None
    return tuple(axes)


def _square_of(v: ir.Value | None) -> ir.Value | None:
    """x when ``v`` = x * x or Pow(x, 2)."""
    if v is None:
        return None
    p = product(v)
    if p is None or len(p[0]) != 2 or p[0][0] is not p[0][1] or p[1] != 1.0:
        return None
    return p[0][0]


def _rsqrt_of(var: ir.Value) -> tuple[ir.Value, float, ir.Node] | None:
    """``var`` = mean(...) feeding Add(eps) -> Sqrt: (sqrt output, eps, sqrt node)."""
    add = single_user(var)
    if not is_op(add, "Add"):
        return None
    eps = scalar(other(add, var))
    if eps is None or eps < 0:
        return None
    sq = single_user(add.outputs[0])
    if not is_op(sq, "Sqrt"):
        return None
    return sq.outputs[0], eps, sq


def _divided(num: ir.Value, den: ir.Value) -> ir.Node | None:
    """The node computing num / den: Div(num, den), Mul(num, Reciprocal(den)), Mul(num, 1/den)."""
    for node, _ in den.uses():
        if is_op(node, "Div") and node.inputs[0] is num and node.inputs[1] is den:
            return node
    user = single_user(den)
    inv = None
    if is_op(user, "Reciprocal"):
        inv = user.outputs[0]
    elif is_op(user, "Div") and user.inputs[1] is den and scalar(user.inputs[0]) == 1.0:
        inv = user.outputs[0]
    if inv is None:
        return None
    mul = single_user(inv)
    if is_op(mul, "Mul") and other(mul, inv) is num:
        return mul
    return None


def _fits(w: ir.Value | None, x: ir.Value, n_axes: int) -> bool:
    if w is None or w.const_value is None or w.const_value.dtype != x.dtype:
        return False
    ws = list(w.const_value.shape.numpy())
    while len(ws) > n_axes and ws[0] == 1:
        ws = ws[1:]
    dims = list(x.shape.dims[-n_axes:])
    return len(ws) == n_axes and all(isinstance(d, int) and d == s for d, s in zip(dims, ws))


def _affine(norm: ir.Node, x: ir.Value, n_axes: int, with_bias: bool):
    """Fold a following Mul by a weight (and Add of a bias) into the norm when they fit."""
    last, w, b = norm, None, None
    mul = single_user(norm.outputs[0])
    if is_op(mul, "Mul") and _fits(other(mul, norm.outputs[0]), x, n_axes):
        last, w = mul, other(mul, norm.outputs[0])
        if with_bias:
            add = single_user(mul.outputs[0])
            if is_op(add, "Add") and _fits(other(add, mul.outputs[0]), x, n_axes):
                last, b = add, other(add, mul.outputs[0])
    return last, w, b


def _match_layer_norm(mean: ir.Node):
    axes = _mean_axes(mean)
    if axes is None:
        return None
    x = mean.inputs[0]
    sub = single_user(mean.outputs[0])
    if not is_op(sub, "Sub") or sub.inputs[0] is not x or sub.inputs[1] is not mean.outputs[0]:
        return None
    d = sub.outputs[0]
    for user, _ in d.uses():
        sq = user.outputs[0]
        if _square_of(sq) is not d:
            continue
        var = single_user(sq)
        if not is_op(var, "ReduceMean") or _mean_axes(var) != axes:
            continue
        rs = _rsqrt_of(var.outputs[0])
        if rs is None:
            continue
        den, eps, _ = rs
        norm = _divided(d, den)
        if norm is None:
            continue
        last, w, b = _affine(norm, x, len(axes), with_bias=True)
        return "LayerNorm", x, w, b, last, axes[0] - len(x.shape), eps
    return None


def _match_rms_norm(mean: ir.Node):
    axes = _mean_axes(mean)
    if axes is None:
        return None
    x = _square_of(mean.inputs[0])
    if x is None or x.shape is None or single_user(mean.inputs[0]) is not mean:
        return None
    rs = _rsqrt_of(mean.outputs[0])
    if rs is None:
        return None
    den, eps, _ = rs
    norm = _divided(x, den)
    if norm is None:
        return None
    last, w, _ = _affine(norm, x, len(axes), with_bias=False)
    return "RMSNorm", x, w, None, last, axes[0] - len(x.shape), eps


def fuse_norms(model: ir.Model) -> PassResult:
    """Rewrite every decomposed LayerNorm / RMSNorm of the main graph."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not is_op(node, "ReduceMean") or node.graph is None:
            continue
        m = _match_layer_norm(node) or _match_rms_norm(node)
        if m is None:
            continue
        op, x, w, b, last, axis, eps = m
        ins = [x, w] + ([b] if b is not None else [])
        fused = ir.Node(DOMAIN, op, ins, attributes=[ir.AttrInt64("axis", axis),
                                                     ir.AttrFloat32("epsilon", float(np.float32(eps)))],
                        name=f"{node.name}_{op.lower()}" if node.name else None)
        replace_output(graph, last, fused)
        count += 1
    return finish(model, count)
