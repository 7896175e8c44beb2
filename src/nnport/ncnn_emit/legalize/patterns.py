"""ONNX subgraphs that are one ncnn layer: Erf-GELU  x*0.5*(1+erf(x/sqrt2)) -> GELU,
x*sigmoid(x) -> Swish, x*hardsigmoid(x) and x*clip(x+3, 0, 6)/6 -> HardSwish, the
ReduceMean/Sub/Pow/Sqrt/Div chain of exports before opset 17 -> LayerNorm,
softmax(q @ k^T * scale) @ v -> SDPA.  Returns
{id(last node): emit(ctx, node)}; covered nodes go to ctx.skip.

ncnn SDPA (scaled dot-product attention, src/layer/sdpa.cpp): bottoms q (heads, seq, d),
k and v (groups, seq_k, d); params 5=attn_mask (a 4th bottom, added to the scores) 6=scale
(0 = 1/sqrt(d)) 7=kv_cache.

GELU is recognized by the PyTorch fusions' matcher (``passes/match.gelu``), and attention ends
the same way there (``passes/match.attention_output``); what leads to the scores is matched
here, as ncnn's SDPA takes it (no mask; K in any layout that one Permute makes (heads, seq, d);
chains of scalar scales).  The other helpers come from ``passes/match.py`` too."""
from __future__ import annotations

import numpy as np

from ...passes.match import attention_output, gelu, other


def _scalar(ctx, v):
    """A one-element constant as a float: the probe's values, so also what shape arithmetic
    computes (the ``scalar`` this target gives the shared matchers)."""
    c = ctx.const(v)
    if c is None or np.asarray(c).size != 1:
        return None
    return float(np.asarray(c).ravel()[0])


def find(ctx) -> dict:
    claimed = {}
    for node in ctx.model.graph:
        if node.op_type == "Erf":
            _gelu(ctx, node, claimed)
        elif node.op_type == "Sigmoid":
            _swish(ctx, node, claimed)
        elif node.op_type == "Softmax":
            _sdpa(ctx, node, claimed)
        elif node.op_type == "HardSigmoid":
            _hardswish_hs(ctx, node, claimed)
        elif node.op_type == "Clip":
            _hardswish_clip(ctx, node, claimed)
        elif node.op_type == "ReduceMean":
            _layernorm(ctx, node, claimed)
    return claimed


def _gelu(ctx, erf, claimed):
    m = gelu(erf, scalar=lambda v: _scalar(ctx, v))
    if m is None:
        return
    x, chain = m
    for n in chain[:-1]:
        ctx.skip.add(id(n))

    def emit(ctx, node, x=x):
        ctx.unary("GELU", {0: 0}, x=x, y=node.outputs[0])

    claimed[id(chain[-1])] = emit


def _swish(ctx, sig, claimed):
    x = sig.inputs[0]
    mul = ctx.single_consumer(sig.outputs[0])
    if mul is None or mul.op_type != "Mul" or other(mul, sig.outputs[0]) is not x:
        return
    ctx.skip.add(id(sig))

    def emit(ctx, node, x=x):
        ctx.unary("Swish", x=x, y=node.outputs[0])

    claimed[id(mul)] = emit


def _peel_scale(ctx, v):
    """(source, factor): ``v`` = source * factor through Mul/Div by scalar constants."""
    factor, chain = 1.0, []
    while True:
        p = v.producer()
        if p is None or p.op_type not in ("Mul", "Div") or ctx.single_consumer(v) is None:
            return v, factor, chain
        k = _scalar(ctx, p.inputs[1])
        if k is not None:
            src = p.inputs[0]
        elif p.op_type == "Mul" and _scalar(ctx, p.inputs[0]) is not None:
            k, src = _scalar(ctx, p.inputs[0]), p.inputs[1]
        else:
            return v, factor, chain
        if p.op_type == "Div":
            if k == 0:
                return v, factor, chain
            k = 1.0 / k
        factor *= k
        chain.append(p)
        v = src


def _sdpa(ctx, sm, claimed):
    axis = sm.attributes.get("axis")
    scores = sm.inputs[0]
    r = len(ctx.probe.shape.get(scores.name, ()))
    if axis is None or axis.value not in (-1, r - 1) or r not in (3, 4):
        return
    mm2 = attention_output(sm)
    if mm2 is None:
        return
    v = mm2.inputs[1]
    raw, post, chain = _peel_scale(ctx, scores)
    mm1 = raw.producer()
    if mm1 is None or mm1.op_type != "MatMul" or ctx.single_consumer(raw) is None:
        return
    q, qs, qchain = _peel_scale(ctx, mm1.inputs[0])
    kt, ks, kchain = _peel_scale(ctx, mm1.inputs[1])
    tr = kt.producer()
    if tr is None or tr.op_type != "Transpose" or ctx.single_consumer(kt) is None:
        return
    perm = list(tr.attributes["perm"].value) if tr.attributes.get("perm") is not None else None
    if perm is None or len(perm) != r:
        return
    k = tr.inputs[0]
    # k^T = transpose(k0, perm): k itself is k0 permuted by perm with the last two swapped
    kperm = perm[:-2] + [perm[-1], perm[-2]]
    if any(ctx.is_const(t) for t in (q, k, v)):
        return
    if kperm != list(range(r)):
        if not ctx.drop(k) or kperm[0] != 0:
            return
        kperm = [p - 1 for p in kperm[1:]]
    else:
        kperm = None
    # ncnn's SDPA takes (heads, seq, d): the q/k/v blobs must be 3-D there
    kshape = ctx.shape(tr.outputs[0])
    if any(len(ctx.nshape(t)) != 3 for t in (q, v)) or ctx.rank(k) != r or \
            ctx.shape(q)[:-2] != kshape[:-2]:
        return
    scale = post * qs * ks
    for n in [mm1, tr, sm] + chain + qchain + kchain:
        ctx.skip.add(id(n))

    def emit(ctx, node, q=q, k=k, v=v, scale=scale, kperm=kperm):
        from ..ops.common import permute_type

        kb = ctx.blob(k)
        if kperm is not None:  # k as (heads, seq, d)
            kb = ctx.add("Permute", [kb], [ctx.g.unique(k.name + "_heads")],
                         {0: permute_type(kperm)})
        ctx.add("SDPA", [ctx.blob(q), kb, ctx.blob(v)],
                [ctx.out(node.outputs[0], ctx.drop(q))], {5: 0, 6: float(scale)})

    claimed[id(mm2)] = emit


def _attr(node, name, default):
    a = node.attributes.get(name)
    return default if a is None else a.value


def _hardswish(x, alpha: float, beta: float):
    """The emitter of one HardSwish layer (0=alpha 1=beta) reading ``x``."""
    def emit(ctx, node):
        ctx.unary("HardSwish", {0: alpha, 1: beta}, x=x, y=node.outputs[0])

    return emit


def _hardswish_hs(ctx, hs, claimed):
    """x * HardSigmoid(x) -> HardSwish."""
    x = hs.inputs[0]
    mul = ctx.single_consumer(hs.outputs[0])
    if mul is None or mul.op_type != "Mul" or other(mul, hs.outputs[0]) is not x:
        return
    ctx.skip.add(id(hs))
    claimed[id(mul)] = _hardswish(x, float(_attr(hs, "alpha", 0.2)), float(_attr(hs, "beta", 0.5)))


def _clip_bounds(ctx, clip):
    lo = _scalar(ctx, clip.inputs[1]) if len(clip.inputs) > 1 and clip.inputs[1] is not None \
        else _attr(clip, "min", None)
    hi = _scalar(ctx, clip.inputs[2]) if len(clip.inputs) > 2 and clip.inputs[2] is not None \
        else _attr(clip, "max", None)
    return lo, hi


def _by_six(ctx, node) -> bool:
    """``node`` divides by 6 or multiplies by 1/6 (a scalar constant second input)."""
    if node is None or node.op_type not in ("Div", "Mul"):
        return False
    k = _scalar(ctx, node.inputs[1])
    return k is not None and k != 0 and bool(
        np.isclose(k if node.op_type == "Div" else 1 / k, 6.0))


def _hardswish_clip(ctx, clip, claimed):
    """x * Clip(x + 3, 0, 6) / 6, as (x * clip) / 6 or x * (clip / 6) -> HardSwish(1/6, 1/2)."""
    add = clip.inputs[0].producer()
    if add is None or add.op_type != "Add" or ctx.single_consumer(clip.inputs[0]) is not clip:
        return
    x = add.inputs[0] if _scalar(ctx, add.inputs[1]) == 3.0 else (
        add.inputs[1] if _scalar(ctx, add.inputs[0]) == 3.0 else None)
    if x is None or _clip_bounds(ctx, clip) != (0.0, 6.0):
        return
    first = ctx.single_consumer(clip.outputs[0])
    if first is None:
        return
    last = ctx.single_consumer(first.outputs[0])
    if first.op_type == "Mul" and other(first, clip.outputs[0]) is x:  # (x * clip) / 6
        if not _by_six(ctx, last):
            return
    elif _by_six(ctx, first):  # x * (clip / 6)
        if last is None or last.op_type != "Mul" or other(last, first.outputs[0]) is not x:
            return
    else:
        return
    for n in (add, clip, first):
        ctx.skip.add(id(n))
    claimed[id(last)] = _hardswish(x, 1 / 6, 0.5)


def _last_axis(ctx, node, x) -> bool:
    axes = _attr(node, "axes", None)
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = ctx.const(node.inputs[1])
    if axes is None or int(_attr(node, "keepdims", 1)) != 1:
        return False
    axes = [int(a) for a in np.ravel(axes)]
    return axes in ([-1], [ctx.rank(x) - 1])


def _layernorm(ctx, mean, claimed):
    """y = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* gamma] [+ beta], over the last
    axis -> LayerNorm 0=affine_size 1=eps 2=affine."""
    x = mean.inputs[0]
    if not _last_axis(ctx, mean, x):
        return
    subs = ctx.consumers.get(mean.outputs[0].name, [])
    if len(subs) != 1 or subs[0].op_type != "Sub" or subs[0].inputs[0] is not x:
        return
    sub = subs[0]
    d = sub.outputs[0]
    uses = ctx.consumers.get(d.name, [])
    pw = next((u for u in uses if u.op_type in ("Pow", "Mul")), None)
    div = next((u for u in uses if u.op_type == "Div" and u.inputs[0] is d), None)
    if pw is None or div is None or len(uses) != 2 or d.name in ctx.graph_outputs:
        return
    if pw.op_type == "Pow" and _scalar(ctx, pw.inputs[1]) != 2.0:
        return
    if pw.op_type == "Mul" and not (pw.inputs[0] is d and pw.inputs[1] is d):
        return
    var = ctx.single_consumer(pw.outputs[0])
    if var is None or var.op_type != "ReduceMean" or not _last_axis(ctx, var, pw.outputs[0]):
        return
    add = ctx.single_consumer(var.outputs[0])
    eps = _scalar(ctx, other(add, var.outputs[0])) if add is not None and \
        add.op_type == "Add" else None
    if eps is None:
        return
    sq = ctx.single_consumer(add.outputs[0])
    if sq is None or sq.op_type != "Sqrt" or ctx.single_consumer(sq.outputs[0]) is not div or \
            div.inputs[1] is not sq.outputs[0]:
        return
    size = ctx.shape(x)[-1]

    def per_feature(v, node):
        c = ctx.const(v)
        if c is None or np.asarray(c).size != size or np.asarray(c).shape[-1] != size:
            return None
        return np.asarray(c, np.float32).reshape(size)

    gamma, beta, tail, _ = ctx.affine_tail(div.outputs[0], per_feature)
    gamma = np.ones(size, np.float32) if gamma is None else gamma
    beta = np.zeros(size, np.float32) if beta is None else beta
    chain = [mean, sub, pw, var, add, sq, div] + tail
    last = chain[-1]
    for n in chain:
        if n is not last:
            ctx.skip.add(id(n))

    def emit(ctx, node, x=x, gamma=gamma, beta=beta, eps=eps):
        from ..graph import Weight

        ctx.add("LayerNorm", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))],
                {0: int(size), 1: float(eps), 2: 1}, [Weight(gamma), Weight(beta)])

    claimed[id(last)] = emit
