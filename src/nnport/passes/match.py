"""Matching patterns of onnx_ir nodes, for every target: the PyTorch fusions
(``passes/torch/fuse_*.py``) and the ncnn patterns (``ncnn_emit/legalize/patterns.py``) match
with these helpers and, where both recognize the same subgraph, with the same matcher (``gelu``,
``attention_output``); the fusions then replace the match with one node in nnport's private
domain (``replace_output``, ``finish``).  One module instead of helpers borrowed from one pass by
the next, or a second matcher per target.

A matcher that reads constants takes ``scalar`` (``fn(value) -> float | None``), by default
``scalar`` below (the value's own constant); the ncnn target passes one that also knows the
values its probe computed."""
from __future__ import annotations

import math
from collections.abc import Callable

import onnx_ir as ir
from onnx_ir.passes import PassResult

from ..irutil import replace_value

DOMAIN = "nnport"
FLOATS = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE}


def only_use(value: ir.Value, node: ir.Node) -> bool:
    """``value`` feeds ``node`` and nothing else (and is not a graph output)."""
    if value.is_graph_output():
        return False
    users = {id(u) for u, _ in value.uses()}
    return users == {id(node)}


def replace_output(graph: ir.Graph, last: ir.Node, fused: ir.Node) -> None:
    """Insert ``fused`` before ``last`` and let it take over ``last``'s output (uses, graph
    outputs, name, shape and type); the nodes left without users are removed afterwards."""
    out = last.outputs[0]
    if not fused.metadata_props:
        # the exporter's record of the module it came from (torch_emit/tree.py)
        fused.metadata_props.update(last.metadata_props)
    graph.insert_before(last, fused)
    new = fused.outputs[0]
    new.shape, new.type = out.shape, out.type
    replace_value(out, new, keep_name=True)


def finish(model: ir.Model, count: int) -> PassResult:
    """After a fusion pass that fused ``count`` patterns: declare the private domain and drop
    what the fused nodes replaced."""
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    if count:
        model.opset_imports.setdefault(DOMAIN, 1)
        RemoveUnusedNodesPass()(model)
    return PassResult(model, count > 0)


def scalar(value: ir.Value | None) -> float | None:
    if value is None or value.const_value is None:
        return None
    try:
        arr = value.const_value.numpy()
    except Exception:
        return None
    if arr.size != 1 or arr.dtype.kind != "f":
        return None
    return float(arr.reshape(()))


def is_op(node: ir.Node | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def other(node: ir.Node, value: ir.Value) -> ir.Value | None:
    ins = list(node.inputs)
    if len(ins) != 2:
        return None
    if ins[0] is value:
        return ins[1]
    if ins[1] is value:
        return ins[0]
    return None


def close(v: float | None, target: float) -> bool:
    return v is not None and abs(v - target) <= 1e-6 * abs(target)


def single_user(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0]


def product(value: ir.Value, stop: set[int] = frozenset()) -> tuple[list[ir.Value], float] | None:
    """``value`` as a product: (non-constant factors, constant factor).  Descends into Mul,
    Div by a scalar constant and Pow by a small integer, through values used only once (a value
    used elsewhere, or listed in ``stop``, is a factor)."""
    factors: list[ir.Value] = []
    const = 1.0

    def walk(v: ir.Value, root: bool) -> bool:
        nonlocal const
        s = scalar(v)
        if s is not None:
            const *= s
            return True
        node = v.producer()
        inner = root or (id(v) not in stop and single_user(v) is not None)
        if node is not None and inner and node.domain in ("", "ai.onnx"):
            ins = list(node.inputs)
            if node.op_type == "Mul" and len(ins) == 2 and None not in ins:
                return walk(ins[0], False) and walk(ins[1], False)
            if node.op_type == "Div" and len(ins) == 2 and ins[0] is not None:
                d = scalar(ins[1])
                if d not in (None, 0.0):
                    const /= d
                    return walk(ins[0], False)
            if node.op_type == "Pow" and len(ins) == 2 and ins[0] is not None:
                e = scalar(ins[1])
                if e in (2.0, 3.0):
                    return all(walk(ins[0], False) for _ in range(int(e)))
        if root:
            return False
        factors.append(v)
        return True

    if not walk(value, True):
        return None
    return factors, const


def gelu(erf: ir.Node, *, scalar: Callable[[ir.Value | None], float | None] = scalar
         ) -> tuple[ir.Value, list[ir.Node]] | None:
    """``erf`` as the core of the erf form of GELU, ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (any
    order of the two Muls; Div by sqrt(2) or Mul by 1/sqrt(2)): (x, the matched nodes), the
    node whose output is the GELU's last."""
    scaled = erf.inputs[0]
    pre = scaled.producer() if scaled is not None else None
    if is_op(pre, "Div") and close(scalar(pre.inputs[1]), math.sqrt(2)):
        x = pre.inputs[0]
    elif is_op(pre, "Mul") and (close(scalar(pre.inputs[1]), 1 / math.sqrt(2))
                                or close(scalar(pre.inputs[0]), 1 / math.sqrt(2))):
        x = pre.inputs[0] if scalar(pre.inputs[0]) is None else pre.inputs[1]
    else:
        return None
    if x is None or not only_use(scaled, erf):
        return None
    add = single_user(erf.outputs[0])
    if not is_op(add, "Add") or not close(scalar(other(add, erf.outputs[0])), 1.0):
        return None
    # the remaining product x * 0.5 * add, in any of its spellings
    m1 = single_user(add.outputs[0])
    if not is_op(m1, "Mul"):
        return None
    o = other(m1, add.outputs[0])
    if o is x:  # (x * add) * 0.5
        m2 = single_user(m1.outputs[0])
        if is_op(m2, "Mul") and close(scalar(other(m2, m1.outputs[0])), 0.5):
            return x, [pre, erf, add, m1, m2]
        return None
    if close(scalar(o), 0.5):  # (add * 0.5) * x
        m2 = single_user(m1.outputs[0])
        if is_op(m2, "Mul") and other(m2, m1.outputs[0]) is x:
            return x, [pre, erf, add, m1, m2]
        return None
    half = o.producer() if o is not None else None  # (x * 0.5) * add
    if is_op(half, "Mul") and other(half, x) is not None and close(
            scalar(other(half, x)), 0.5) and only_use(o, m1):
        return x, [pre, erf, add, half, m1]
    return None


def attention_output(softmax: ir.Node) -> ir.Node | None:
    """The ``MatMul(probs, V)`` that ends an attention: the one use of the Softmax's output,
    as the MatMul's first input.  What leads to the scores (scale, mask, the layout of K) is
    matched by each target, which accept different things."""
    if len(softmax.outputs) != 1:
        return None
    probs = softmax.outputs[0]
    out_mm = single_user(probs)
    if not is_op(out_mm, "MatMul") or out_mm.inputs[0] is not probs:
        return None
    return out_mm
