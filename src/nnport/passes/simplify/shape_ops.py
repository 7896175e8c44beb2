"""Replace Shape/Size of tensors whose shape is fully known by constants, so that the
Shape -> Gather -> Unsqueeze -> Concat chains exporters produce fold away afterwards."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import replace_with_constant, shape_op_dims


def _static(v: ir.Value | None):
    if v is None or v.shape is None:
        return None
    dims = v.shape.dims
    return tuple(dims) if all(isinstance(d, int) for d in dims) else None


def fold_shape_ops(model: ir.Model) -> PassResult:
    graph = model.graph
    changed = False
    for node in list(graph):
        if node.op_type not in ("Shape", "Size") or node.domain not in ("", "ai.onnx"):
            continue
        shape = _static(node.inputs[0])
        if shape is None:
            continue
        if node.op_type == "Shape":
            arr = np.array(shape_op_dims(node, list(shape)), dtype=np.int64)
        else:
            arr = np.array(int(np.prod(shape)), dtype=np.int64)
        replace_with_constant(graph, node.outputs[0], arr, f"{node.name}_value")
        graph.remove(node, safe=True)
        changed = True
    return PassResult(model, changed)
