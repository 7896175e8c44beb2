"""Helpers shared by the layout passes (``layout_*.py``) and the Keras RNN rewrite."""
from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir

_ONNX = ("", "ai.onnx")
_counter = itertools.count()


def is_op(node: ir.Node | None, *ops: str) -> bool:
    return node is not None and node.domain in _ONNX and node.op_type in ops


def attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def single_use(v: ir.Value) -> bool:
    return len(v.uses()) == 1 and not v.is_graph_output()


def new_const(graph: ir.Graph, arr: np.ndarray, hint: str) -> ir.Value:
    name = f"{hint}_{next(_counter)}"
    while name in graph.initializers:
        name = f"{hint}_{next(_counter)}"
    arr = np.ascontiguousarray(arr)
    val = ir.Value(name=name, const_value=ir.tensor(arr, name=name), shape=ir.Shape(arr.shape),
                   type=ir.TensorType(ir.DataType.from_numpy(arr.dtype)))
    graph.register_initializer(val)
    return val


def remove_if_dead(graph: ir.Graph, node: ir.Node | None) -> None:
    if node is None or node.graph is not graph:
        return
    if any(o.uses() or o.is_graph_output() for o in node.outputs):
        return
    graph.remove(node, safe=True)
