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
