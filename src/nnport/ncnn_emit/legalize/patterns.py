"""ONNX subgraphs that are one ncnn layer: Erf-GELU  x*0.5*(1+erf(x/sqrt2)) -> GELU,
x*sigmoid(x) -> Swish, softmax(q @ k^T * scale) @ v -> SDPA.  Returns
{id(last node): emit(ctx, node)}; covered nodes go to ctx.skip.

ncnn SDPA (scaled dot-product attention, src/layer/sdpa.cpp): bottoms q (heads, seq, d),
k and v (groups, seq_k, d); params 5=attn_mask (a 4th bottom, added to the scores) 6=scale
(0 = 1/sqrt(d)) 7=kv_cache."""
from __future__ import annotations

import numpy as np


def _scalar(ctx, v):
    c = ctx.const(v)
    if c is None or np.asarray(c).size != 1:
        return None
    return float(np.asarray(c).ravel()[0])


def _other(node, v):
    return node.inputs[1] if node.inputs[0] is v else node.inputs[0]


def find(ctx) -> dict:
    claimed = {}
    for node in ctx.model.graph:
        if node.op_type == "Erf":
            _gelu(ctx, node, claimed)
        elif node.op_type == "Sigmoid":
            _swish(ctx, node, claimed)
        elif node.op_type == "Softmax":
            _sdpa(ctx, node, claimed)
    return claimed


def _gelu(ctx, erf, claimed):
    div = erf.inputs[0].producer()
    if div is None or div.op_type not in ("Div", "Mul"):
        return
    k = _scalar(ctx, div.inputs[1])
    if k is None or not np.isclose(k if div.op_type == "Div" else 1 / k, np.sqrt(2), rtol=1e-3):
        return
    x = div.inputs[0]
    add = ctx.single_consumer(erf.outputs[0])
    if add is None or add.op_type != "Add" or _scalar(ctx, _other(add, erf.outputs[0])) != 1.0:
        return
    m1 = ctx.single_consumer(add.outputs[0])
    if m1 is None or m1.op_type != "Mul":
        return
    chain = [div, erf, add, m1]
    o = _other(m1, add.outputs[0])
    if o is x:  # (x * (1+erf)) * 0.5
        m2 = ctx.single_consumer(m1.outputs[0])
        if m2 is None or m2.op_type != "Mul" or _scalar(ctx, _other(m2, m1.outputs[0])) != 0.5:
            return
        chain.append(m2)
    else:  # (x*0.5) * (1+erf)
        half = o.producer()
        if half is None or half.op_type != "Mul" or x not in half.inputs or \
                _scalar(ctx, _other(half, x)) != 0.5:
            return
        if ctx.single_consumer(half.outputs[0]) is not m1:
            return
        chain.append(half)
    last = chain[-1] if o is x else m1
    for n in chain:
        if n is not last:
            ctx.skip.add(id(n))

    def emit(ctx, node, x=x):
        ctx.unary("GELU", {0: 0}, x=x, y=node.outputs[0])

    claimed[id(last)] = emit


def _swish(ctx, sig, claimed):
    x = sig.inputs[0]
    mul = ctx.single_consumer(sig.outputs[0])
    if mul is None or mul.op_type != "Mul" or _other(mul, sig.outputs[0]) is not x:
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
    mm2 = ctx.single_consumer(sm.outputs[0])
    if mm2 is None or mm2.op_type != "MatMul" or mm2.inputs[0] is not sm.outputs[0]:
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
        from ..ops.op_shape import permute_type

        kb = ctx.blob(k)
        if kperm is not None:  # k as (heads, seq, d)
            kb = ctx.add("Permute", [kb], [ctx.g.unique(k.name + "_heads")],
                         {0: permute_type(kperm)})
        ctx.add("SDPA", [ctx.blob(q), kb, ctx.blob(v)],
                [ctx.out(node.outputs[0], ctx.drop(q))], {5: 0, 6: float(scale)})

    claimed[id(mm2)] = emit
