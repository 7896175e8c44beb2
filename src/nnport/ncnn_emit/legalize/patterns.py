"""ONNX subgraphs that are one ncnn layer: Erf-GELU  x*0.5*(1+erf(x/sqrt2)) -> GELU,
x*sigmoid(x) -> Swish.  Returns {id(last node): emit(ctx, node)}; covered nodes go to ctx.skip."""
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
