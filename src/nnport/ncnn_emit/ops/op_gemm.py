"""MatMul/Gemm with a constant weight -> InnerProduct (a following Add of a constant bias is
absorbed); MatMul of two activations -> MatMul.

ncnn params: InnerProduct 0=num_output 1=bias_term 2=weight_data_size 9=activation_type
(weight (out, in) tagged, bias raw); MatMul 0=transB.
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from ..registry import register
from .common import attrs_of


def _bias_add(ctx, y, n):
    """A single Add consumer of ``y`` with a constant bias of n values (absorbed)."""
    cons = ctx.single_consumer(y)
    if cons is None or cons.op_type != "Add":
        return None, None
    other = cons.inputs[1] if cons.inputs[0] is y else cons.inputs[0]
    b = ctx.const(other)
    if b is None or np.asarray(b).size != n or np.asarray(b).shape[-1] != n:
        return None, None
    return cons, np.asarray(b, np.float32).reshape(n)


def inner_product(ctx, x, Wt, bias, y, int8=None):
    """y = x @ Wt.T + bias; ``Wt``: (out, in).  ``int8``: (int8 weight (out, in), ncnn weight
    scales, ncnn input scale) for ncnn's int8 InnerProduct (8=int8_scale_term), which also
    takes 2-D rows."""
    n = Wt.shape[0]
    final = y
    if bias is None:
        node, b = _bias_add(ctx, y, n)
        if node is not None:
            ctx.skip.add(id(node))
            final, bias = node.outputs[0], b
    if int8 is not None:
        Wq, wscales, (xscale, x) = int8
        p = {0: n, 1: int(bias is not None), 2: int(Wq.size), 8: 1}
        w = [Weight(np.ascontiguousarray(Wq), flagged=True)]
        if bias is not None:
            w.append(Weight(np.asarray(bias, np.float32).reshape(n)))
        w += [Weight(wscales), Weight(np.array([xscale], np.float32))]
        return ctx.add("InnerProduct", [ctx.blob(x)], [ctx.out(final, ctx.drop(x))], p, w)
    if len(ctx.nshape(x)) == 2:
        # a sequence of vectors (tokens, features): one Gemm with the weight as constant B
        # (ncnn's InnerProduct would take it row by row).  Gemm 2=transA 3=transB 4/5/6=
        # constantA/B/C 8=N 9=K 10=constant_broadcast_type_C (4: per output column);
        # B (N, K) and C (N) are stored with a type tag.
        k = Wt.shape[1]
        p = {2: 0, 3: 1, 4: 0, 5: 1, 6: int(bias is not None), 8: n, 9: k}
        w = [Weight(Wt, flagged=True)]
        if bias is not None:
            p[10] = 4
            w.append(Weight(np.asarray(bias, np.float32).reshape(1, n), flagged=True))
        return ctx.add("Gemm", [ctx.blob(x)], [ctx.out(final, ctx.drop(x))], p, w)
    p = {0: n, 1: int(bias is not None), 2: int(Wt.size)}
    w = [Weight(Wt, flagged=True)]
    if bias is not None:
        w.append(Weight(np.asarray(bias, np.float32).reshape(n)))
    ctx.add("InnerProduct", [ctx.blob(x)], [ctx.out(final, ctx.drop(x))], p, w)


@register("MatMul", (1, 9, 13))
def matmul(ctx, node):
    a, b = node.inputs
    y = node.outputs[0]
    B = ctx.const(b)
    if B is not None and np.asarray(B).ndim == 2 and len(ctx.nshape(a)) <= 2 and not ctx.is_const(a):
        q = _int8(ctx, node, a, b, 1, True) if _quantized(node) else None
        if q is not None:
            q = (np.ascontiguousarray(q[0].T),) + q[1:]
        # a transposed view: the .bin writer lays each weight out as it writes it
        return inner_product(ctx, a, np.asarray(B, np.float32).T, None, y, q)
    if _quantized(node):
        from .op_quant import log

        why = ("both operands are computed at run time (ncnn's int8 layers need a constant "
               "weight)") if B is None else "its input has more than 2 dims besides the batch"
        log(ctx, "MatMul", "float32", why)
    if ctx.is_const(a) and ctx.is_const(b):
        ctx.fail("constant MatMul was not folded")
    ref = a if not ctx.is_const(a) else b
    ba = ctx.blob(a, like=ref if ctx.is_const(a) and len(ctx.nshape(b)) > 2 else None) \
        if ctx.is_const(a) else ctx.blob(a)
    bb = ctx.blob(b)
    if not ctx.is_const(b) and ctx.rank(b) == 2 and ctx.drop(b):
        # a (1, N) matrix held without its leading 1 would read as a vector of K=N: K is 1
        from .common import whole

        bb = whole(ctx, b)
    drop = ctx.drop(ref) if ctx.rank(y) == ctx.rank(ref) else None
    other = b if ref is a else a
    if drop and not ctx.is_const(other) and ctx.rank(other) == ctx.rank(y) and \
            not ctx.drop(other):
        # (1, ...) without its batch against (N, ...) held whole: ncnn broadcasts the first
        # as numpy does, and the product is N samples held whole
        drop = False
    ctx.add("MatMul", [ba, bb], [ctx.out(y, drop)], {0: 0})


@register("Gemm", (7, 9, 11, 13))  # before 7: the broadcast attribute
def gemm(ctx, node):
    at = attrs_of(node)
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    if at.get("transA", 0):
        ctx.fail("Gemm with transA=1 is not mapped to ncnn")
    if not ctx.is_const(b):
        return _gemm_dynamic(ctx, node, at, a, b, c)
    B = np.asarray(ctx.need_const(b, "the Gemm weight"), np.float32)
    Wt = B if at.get("transB", 0) else B.T
    Wt = np.ascontiguousarray(Wt) * float(at.get("alpha", 1.0))
    bias = None
    if c is not None and c.name and not ctx.is_const(c):  # a bias computed at run time
        return _gemm_dynamic(ctx, node, at, a, b, c)
    if c is not None and c.name:
        C = np.asarray(ctx.need_const(c, "the Gemm bias"), np.float32) * float(at.get("beta", 1.0))
        if C.size == 1:
            C = np.full(Wt.shape[0], C.ravel()[0], np.float32)
        if C.size != Wt.shape[0]:
            ctx.fail("Gemm bias must be per output column for ncnn")
        bias = C.reshape(-1)
    q = None
    if _quantized(node):
        trans_b = int(at.get("transB", 0))
        q = _int8(ctx, node, a, b, 0 if trans_b else 1, float(at.get("alpha", 1.0)) == 1.0)
        if q is not None and not trans_b:
            q = (np.ascontiguousarray(q[0].T),) + q[1:]
    inner_product(ctx, a, Wt, bias, node.outputs[0], q)


def _quantized(node) -> bool:
    """A layer of a QDQ model: its input or weight comes from a DequantizeLinear."""
    return any(v is not None and v.producer() is not None and
               v.producer().op_type == "DequantizeLinear" for v in node.inputs[:2])


def _int8(ctx, node, a, b, out_axis, plain):
    """(int8 weight as stored in ONNX, ncnn weight scales, ncnn input scale) when the product
    runs in ncnn's int8 InnerProduct, else None (logged with the reason); see ``op_quant``."""
    from .op_quant import input_scale, log, weight_int8

    why = None if plain else "its alpha is not 1"
    if why is None and len(ctx.nshape(a)) > 2:
        why = "its input has more than 2 dims besides the batch"
    if why is None:
        wq, why = weight_int8(ctx, b, out_axis)
    if why is None:
        xscale, why = input_scale(ctx, a)
    if why is not None:
        log(ctx, "InnerProduct", "float32", why)
        return None
    log(ctx, "InnerProduct", "int8")
    return wq[0], wq[1], xscale


def _gemm_dynamic(ctx, node, at, a, b, c):
    """Gemm whose B is computed at run time: ncnn Gemm (0=alpha 2=transA 3=transB, A and B as
    bottoms, 2-D blobs whatever their first dim) then the bias C added by a broadcasting
    BinaryOp."""
    from .common import binary, whole as _whole

    y = node.outputs[0]
    alpha = float(at.get("alpha", 1.0))
    p = {0: alpha, 1: 1.0, 2: int(at.get("transA", 0)), 3: int(at.get("transB", 0))}
    has_c = c is not None and c.name
    mid = ctx.temp(y.name + "_ab", ctx.shape(y)) if has_c else y
    ctx.add("Gemm", [_whole(ctx, a), _whole(ctx, b)], [ctx.out(mid, False)], p)
    if not has_c:
        return
    beta = float(at.get("beta", 1.0))
    if beta != 1.0:
        C = ctx.const(c)
        if C is None:  # beta * C first (a BinaryOp by a scalar)
            scaled = ctx.temp(c.name + "_beta", ctx.shape(c))
            one = ctx.temp(c.name + "_k", (), np.float32(beta))
            binary(ctx, 2, c, one, scaled)
            c = scaled
        else:
            c = ctx.temp(c.name + "_beta", np.shape(C), np.asarray(C, np.float32) * beta)
    binary(ctx, 0, mid, c, y)


@register("Einsum", (12, 28))
def einsum(ctx, node):
    """Einsum -> Einsum 0=equation (the ASCII codes of the equation; ncnn reads output
    subscripts i-l and summed ones m-x, so they are renamed).  A dropped batch axis of
    1 takes its subscript out of that operand's term; a subscript then left in the output and
    in no input (a batch of 1 carried through) is taken out of the output, which is then the
    dropped-batch layout."""
    eq = attrs_of(node)["equation"]
    eq = (eq.decode() if isinstance(eq, bytes) else eq).replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    ins = [v for v in node.inputs]
    if len(terms) != len(ins):
        ctx.fail("Einsum equation does not match its inputs")
    ell = ""
    if "..." in lhs:  # the ellipsis as letters of its own, its dims right-aligned
        free = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
        spans = [ctx.rank(v) - (len(t) - 3) if "..." in t else 0 for t, v in zip(terms, ins)]
        ell = "".join(free[:max(spans)])
        terms = [t.replace("...", ell[len(ell) - k:] if k else "") for t, k in zip(terms, spans)]
        rhs = rhs.replace("...", ell)
    if "->" not in eq:  # implicit output: the ellipsis, then the subscripts seen once, sorted
        joined = "".join(terms)
        rhs = ell + "".join(sorted(c for c in set(joined) if c.isalpha() and c not in ell
                                   and joined.count(c) == 1))
    new_terms = []
    for t, v in zip(terms, ins):
        if ctx.is_const(v) or len(t) != ctx.rank(v):
            ctx.fail("Einsum is mapped to ncnn for inputs computed at run time")
        new_terms.append(t[1:] if ctx.drop(v) else t)
    seen = set("".join(new_terms))
    y = node.outputs[0]
    ydrop = False
    if rhs and rhs[0] not in seen:
        rhs, ydrop = rhs[1:], True
    if any(c not in seen for c in rhs) or any(not t for t in new_terms) or len(rhs) > 4:
        ctx.fail("Einsum whose terms do not fit ncnn's 4 dims without the batch axis")
    total = not rhs  # to a scalar: ncnn's Einsum keeps one subscript, a Reduction sums it
    if total:
        rhs = new_terms[0][0]
    # ncnn names the output subscripts i, j, k, l in order and the summed ones m to x
    rename = {c: "ijkl"[n] for n, c in enumerate(rhs)}
    for c in "".join(new_terms):
        if c not in rename:
            rename[c] = chr(ord("m") + len(rename) - len(rhs))
    if len(rename) - len(rhs) > 12:
        ctx.fail("Einsum with more than 12 summed subscripts")
    text = ",".join("".join(rename[c] for c in t) for t in new_terms) + "->" + \
        "".join(rename[c] for c in rhs)
    p = {0: [ord(c) for c in text]}
    if total:
        mid = ctx.add("Einsum", [ctx.blob(v) for v in ins], [ctx.g.unique(y.name + "_vec")], p)
        ctx.add("Reduction", [mid], [ctx.out(y, False)], {0: 0, 1: 1, 4: 0})
        return
    ctx.add("Einsum", [ctx.blob(v) for v in ins], [ctx.out(y, ydrop)], p)
