"""Transpose clean-up for graphs exported from channels-last frameworks (TensorFlow/Keras).

- ``cancel_transposes``: Transpose(Transpose(x, p1), p2) becomes x when the two permutations
  undo each other, one Transpose with the composed permutation otherwise.
- ``push_transposes``: a Transpose feeding an element-wise op (activations, Clip, Cast, and
  binary arithmetic whose other side is a constant or the same Transpose) moves below that op,
  so that it can meet the Transpose that undoes it and cancel.
- ``optimize_transposes``: both, to a fixed point.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array as const, replace_value
from .common import attr, is_op, new_const, remove_if_dead

# element-wise ops with one tensor input (further inputs, if any, are scalar constants)
UNARY = {"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid",
         "HardSwish", "Softplus", "Softsign", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal",
         "Erf", "Gelu", "Mish", "Cast", "Identity", "Floor", "Ceil", "Round", "Sign", "Not",
         "ThresholdedRelu", "Sin", "Cos"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu", "Equal", "Greater", "Less",
          "And", "Or"}


def _perm(node: ir.Node) -> list[int] | None:
    p = attr(node, "perm")
    if p is not None:
        return list(p)
    x = node.inputs[0]
    if x.shape is None:
        return None
    return list(range(len(x.shape)))[::-1]


def cancel_transposes(graph: ir.Graph) -> bool:
    changed = False
    for node in list(graph):
        if node.graph is not graph or not is_op(node, "Transpose"):
            continue
        first = node.inputs[0].producer() if node.inputs[0] is not None else None
        if not is_op(first, "Transpose"):
            continue
        p1, p2 = _perm(first), _perm(node)
        if p1 is None or p2 is None or len(p1) != len(p2):
            continue
        composed = [p1[i] for i in p2]
        x = first.inputs[0]
        if composed == list(range(len(composed))):
            out = node.outputs[0]
            if out.is_graph_output() and (x.is_graph_input() or x.is_graph_output()):
                continue  # an output cannot simply become the input: keep it
            replace_value(out, x)
            graph.remove(node, safe=True)
        else:
            node.replace_input_with(0, x)
            node.attributes["perm"] = ir.AttrInt64s("perm", composed)
        remove_if_dead(graph, first)
        changed = True
    return changed


def _transposed_const(arr: np.ndarray, rank: int, perm: list[int]) -> np.ndarray | None:
    """c such that op(T(x), arr) == T(op(x, c)) for a broadcasting constant ``arr``."""
    if arr.ndim > rank:
        return None
    full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    inv = np.argsort(perm)
    return np.transpose(full, inv)


def _push_one(graph: ir.Graph, node: ir.Node) -> bool:
    """``node`` is a Transpose; move it below its single consumer when that is element-wise."""
    out = node.outputs[0]
    if len(out.uses()) != 1 or out.is_graph_output():
        return False
    user, idx = next(iter(out.uses()))
    perm = _perm(node)
    if perm is None or user.graph is not graph:
        return False
    if is_op(user, *UNARY):
        if idx != 0 or any(const(v) is None for v in user.inputs[1:] if v is not None):
            return False
    elif is_op(user, *BINARY) and len(user.inputs) == 2:
        other = user.inputs[1 - idx]
        oprod = other.producer() if other is not None else None
        if is_op(oprod, "Transpose") and _perm(oprod) == perm and oprod is not node:
            # both sides carry the same transpose: drop it from the other side too
            user.replace_input_with(1 - idx, oprod.inputs[0])
            remove_if_dead(graph, oprod)
        else:
            c = const(other)
            if c is None:
                return False
            tc = _transposed_const(c, len(perm), perm)
            if tc is None:
                return False
            if tc.size != 1 or user.op_type == "PRelu":
                user.replace_input_with(1 - idx, new_const(graph, tc, "layout_const"))
    else:
        return False
    # x -> T -> user -> y   becomes   x -> user -> T' -> y
    x = node.inputs[0]
    y = user.outputs[0]
    user.replace_input_with(idx, x)
    t2 = ir.Node("", "Transpose", [], attributes=[ir.AttrInt64s("perm", perm)],
                 name=f"{user.name or 'op'}_transpose", num_outputs=1)
    graph.insert_after(user, t2)
    if y.dtype is not None:
        t2.outputs[0].dtype = y.dtype
    t2.outputs[0].shape = y.shape
    if y.shape is not None and len(y.shape) == len(perm):
        inv = np.argsort(perm)
        y.shape = ir.Shape([y.shape[int(i)] for i in inv])
    replace_value(y, t2.outputs[0])
    t2.resize_inputs(1)
    t2.replace_input_with(0, y)
    remove_if_dead(graph, node)
    return True


def push_transposes(graph: ir.Graph) -> bool:
    changed = False
    for node in list(graph):
        if node.graph is graph and is_op(node, "Transpose"):
            changed |= _push_one(graph, node)
    return changed


def optimize_transposes(model: ir.Model, max_rounds: int = 50) -> PassResult:
    graph = model.graph
    changed = False
    for _ in range(max_rounds):
        step = cancel_transposes(graph)
        step |= push_transposes(graph)
        step |= cancel_transposes(graph)
        if not step:
            break
        changed = True
    return PassResult(model, changed)
