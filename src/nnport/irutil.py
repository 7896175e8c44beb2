"""Small helpers on onnx_ir graphs shared by passes, emitters and reports."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx_ir as ir


def iter_nodes(graph: ir.Graph) -> Iterable[tuple[ir.Node, int]]:
    """All nodes including those in subgraphs, with their nesting depth."""
    for node in graph:
        yield node, 0
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                for n, d in iter_nodes(attr.value):
                    yield n, d + 1
            elif attr.type == ir.AttributeType.GRAPHS:
                for g in attr.value:
                    for n, d in iter_nodes(g):
                        yield n, d + 1


def const_array(v: ir.Value | None) -> np.ndarray | None:
    """The numpy value of a constant (initializer or folded) value, else None."""
    if v is None or v.const_value is None:
        return None
    try:
        return v.const_value.numpy()
    except Exception:
        return None


def replace_value(old: ir.Value, new: ir.Value, *, keep_name: bool = False) -> None:
    """Every use of ``old`` (graph outputs included) reads ``new``.  The name moves to ``new``
    when ``old`` was a graph output (the graph's interface keeps its names) or ``keep_name``."""
    if keep_name or old.is_graph_output():
        name = old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
    else:
        old.replace_all_uses_with(new)


def replace_with_constant(graph: ir.Graph, old: ir.Value, arr: np.ndarray,
                          fallback_name: str) -> ir.Value:
    """Every use of ``old`` (a node output) reads a new initializer holding ``arr``, named as
    ``old`` was (``fallback_name`` when it had no name); the producer is left for the caller."""
    name = old.name or fallback_name
    const = ir.Value(name=name, const_value=ir.tensor(arr, name=name), shape=ir.Shape(arr.shape),
                     type=ir.TensorType(ir.DataType.from_numpy(arr.dtype)))
    replace_value(old, const, keep_name=True)
    const.name = name  # an unnamed output still gives the initializer a name
    graph.register_initializer(const)
    return const


def shape_op_dims(node: ir.Node, dims: list) -> list:
    """The part of ``dims`` (its input's dims) that a Shape node outputs: its ``start``/``end``
    attributes, clamped as the spec says."""
    rank = len(dims)
    start = node.attributes["start"].value if "start" in node.attributes else 0
    end = node.attributes["end"].value if "end" in node.attributes else rank
    start, end = (max(0, min(rank, v + rank if v < 0 else v)) for v in (start, end))
    return list(dims[start:end])


def ir_tensors(model: ir.Model):
    """Every tensor of the model: initializers of every graph and subgraph, and tensor
    attributes of every node."""
    graphs = [model.graph] + [a.value for n, _ in iter_nodes(model.graph)
                              for a in n.attributes.values() if a.type == ir.AttributeType.GRAPH]
    graphs += [g for n, _ in iter_nodes(model.graph) for a in n.attributes.values()
               if a.type == ir.AttributeType.GRAPHS for g in a.value]
    for g in graphs:
        for v in g.initializers.values():
            yield v.const_value
    for n, _ in iter_nodes(model.graph):
        for a in n.attributes.values():
            if a.type == ir.AttributeType.TENSOR:
                yield a.value
            elif a.type == ir.AttributeType.TENSORS:
                yield from a.value


def tensor_array(tensor, name: str | None) -> np.ndarray:
    """``tensor.numpy()``, or one ConversionError naming the tensor when its data cannot be
    read (an UNDEFINED element type, truncated or missing external data)."""
    from .errors import ConversionError

    try:
        return tensor.numpy()
    except Exception as exc:
        raise ConversionError(f"tensor {name!r}: cannot read its data ({exc})") from None


def model_text(value: str | bytes | None) -> str | None:
    """A model's text field (producer name, doc string) as str: onnx_ir gives text that is
    not UTF-8 as bytes."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
