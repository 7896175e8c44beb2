"""Fuse scaled dot-product attention into one ``nnport::SDPA`` node (PyTorch target only).

Both torch exporters (TorchScript and dynamo) write attention as

    scores = MatMul(Q, Kt)            Kt = Transpose(K, perm=[..., -1, -2]) or any (..., E, S)
    scores = scores / c | scores * c  (optional; or Q and Kt each multiplied by a scalar)
    scores = scores + mask            (optional additive mask, either operand order)
    probs  = Softmax(scores, axis=-1)
    out    = MatMul(probs, V)

which is ``F.scaled_dot_product_attention(Q, K, V, attn_mask=mask, scale=s)``.  The fused node
has inputs (Q, K, V, mask?) and attributes ``scale`` (float) and ``k_transposed`` (1 when the K
input is laid out (..., E, S), i.e. no Transpose could be peeled off).  A Transpose that makes Kt
from some K0 (the TorchScript exporter folds ``k.permute(0, 2, 1, 3).transpose(-1, -2)`` into
one with perm [0, 2, 3, 1]) is changed to make K instead: its perm with the last two entries
swapped, or dropped when that is the identity.  A pattern that does not
match exactly (other consumers of an intermediate, ranks not known to agree, a non-scalar scale,
softmax over another axis) is left alone: a failed match is data, not an error.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ..match import (DOMAIN, FLOATS, attention_output, finish, only_use, replace_output,
                     scalar, single_user)

def _rank(value: ir.Value) -> int | None:
    return None if value.shape is None else len(value.shape)


def _scaled(value: ir.Value) -> tuple[ir.Value, float]:
    """(x, c) when ``value`` = Mul(x, c) / Mul(c, x) / Div(x, c) with a scalar constant c and
    ``value`` feeds one node and is not a graph output; else (value, 1.0).  x may have other
    users (BERT's queries also feed the Shape that reshapes the attention's output)."""
    node = value.producer()
    if node is None or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2 \
            or single_user(value) is None:
        return value, 1.0
    a, b = node.inputs
    if node.op_type == "Mul":
        for x, c in ((a, b), (b, a)):
            s = scalar(c)
            if s is not None and x is not None and x.const_value is None:
                return x, s
    if node.op_type == "Div":
        s = scalar(b)
        if s not in (None, 0.0) and a is not None:
            return a, 1.0 / s
    return value, 1.0


def _match(softmax: ir.Node, opset: int):
    if opset < 13 or len(softmax.outputs) != 1 or softmax.inputs[0] is None:
        return None
    scores = softmax.inputs[0]
    rank = _rank(scores)
    if rank is None or rank < 3:
        return None
    axis = softmax.attributes.get("axis")
    axis = -1 if axis is None else axis.as_int()
    if axis not in (-1, rank - 1):
        return None
    out_mm = attention_output(softmax)
    if out_mm is None:
        return None
    v = out_mm.inputs[1]
    # optional additive mask
    mask = None
    x = scores
    node = x.producer()
    if node is not None and node.op_type == "Add" and node.domain in ("", "ai.onnx") \
            and only_use(x, softmax):
        a, b = node.inputs
        for s_, m_ in ((a, b), (b, a)):
            p = s_.producer() if s_ is not None else None
            if p is not None and p.op_type in ("MatMul", "Mul", "Div") and only_use(s_, node):
                x, mask = s_, m_
                break
        else:
            return None
        consumer = node
    else:
        consumer = softmax
    if not only_use(x, consumer):
        return None
    x, scale = _scaled(x)
    mm = x.producer()
    if mm is None or mm.op_type != "MatMul" or mm.domain not in ("", "ai.onnx") \
            or not only_use(x, _next_user(x)):
        return None
    q, kt = mm.inputs
    q, sq = _scaled(q)
    kt, sk = _scaled(kt)
    scale *= sq * sk
    ranks = {_rank(q), _rank(kt), _rank(v), rank}
    if len(ranks) != 1 or None in ranks:
        return None
    if any(t.dtype not in FLOATS or t.dtype != q.dtype for t in (kt, v)):
        return None
    if mask is not None and (mask.dtype is None or (mask.dtype != q.dtype)):
        return None
    if mask is not None and (_rank(mask) is None or _rank(mask) < 2):
        return None  # SDPA wants a mask of at least (L, S); a scalar or a row stays an Add
    # K from Kt = Transpose(K0, perm), used only here: K = Transpose(K0, perm with its last
    # two entries swapped), which is K0 itself when that is the identity
    k, k_transposed, k_perm = kt, 1, None
    tp = kt.producer()
    if tp is not None and tp.op_type == "Transpose" and tp.domain in ("", "ai.onnx") \
            and only_use(kt, _next_user(kt)):
        perm = tp.attributes.get("perm")
        if perm is not None and len(perm.as_ints()) == rank:
            perm = list(perm.as_ints())
            k_perm = perm[:-2] + [perm[-1], perm[-2]]
            k_transposed = 0
            if k_perm == list(range(rank)):
                k, k_perm = tp.inputs[0], None
    return q, k, v, mask, scale, k_transposed, k_perm, out_mm


def _next_user(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    return uses[0][0] if len(uses) == 1 else None


def fuse_attention(model: ir.Model) -> PassResult:
    """Rewrite every matching attention block in the main graph."""
    opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
    graph = model.graph
    count = 0
    for node in list(graph):
        if node.op_type != "Softmax" or node.domain not in ("", "ai.onnx") or node.graph is None:
            continue
        m = _match(node, opset)
        if m is None:
            continue
        q, k, v, mask, scale, k_transposed, k_perm, out_mm = m
        if k_perm is not None:  # the Transpose feeds only this attention: it now yields K
            tp = k.producer()
            tp.attributes["perm"] = ir.AttrInt64s("perm", k_perm)
            if k.shape is not None:
                dims = list(k.shape)
                k.shape = ir.Shape(dims[:-2] + [dims[-1], dims[-2]])
        fused = ir.Node(DOMAIN, "SDPA", [q, k, v] + ([mask] if mask is not None else []),
                        attributes=[ir.AttrFloat32("scale", float(np.float32(scale))),
                                    ir.AttrInt64("k_transposed", k_transposed)],
                        name=(node.name or "attention") + "_sdpa")
        fused.metadata_props.update(node.metadata_props)  # its module scope (torch_emit/tree.py)
        replace_output(graph, out_mm, fused)
        count += 1
    return finish(model, count)
