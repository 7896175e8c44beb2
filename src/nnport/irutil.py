"""Small helpers on onnx_ir graphs shared by passes, emitters and reports."""
from __future__ import annotations

from typing import Iterable

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
