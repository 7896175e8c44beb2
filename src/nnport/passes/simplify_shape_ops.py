"""Replace Shape/Size of tensors whose shape is fully known by constants, so that the
Shape -> Gather -> Unsqueeze -> Concat chains exporters produce fold away afterwards."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..irutil import replace_value


def _static(v: ir.Value | None):
    if v is None or v.shape is None:
        return None
    dims = v.shape.dims
    return tuple(dims) if all(isinstance(d, int) for d in dims) else None


def fold_shape_ops(model: ir.Model) -> bool:
    graph = model.graph
    changed = False
    for node in list(graph):
        if node.op_type not in ("Shape", "Size") or node.domain not in ("", "ai.onnx"):
            continue
        shape = _static(node.inputs[0])
        if shape is None:
            continue
        if node.op_type == "Shape":
            rank = len(shape)
            start = node.attributes["start"].value if "start" in node.attributes else 0
            end = node.attributes["end"].value if "end" in node.attributes else rank
            start = max(0, min(rank, start + rank if start < 0 else start))
            end = max(0, min(rank, end + rank if end < 0 else end))
            arr = np.array(shape[start:end], dtype=np.int64)
        else:
            arr = np.array(int(np.prod(shape)), dtype=np.int64)
        out = node.outputs[0]
        name = out.name or f"{node.name}_value"
        const = ir.Value(name=name, const_value=ir.tensor(arr, name=name),
                         shape=ir.Shape(arr.shape), type=ir.TensorType(ir.DataType.INT64))
        replace_value(out, const, keep_name=True)
        const.name = name  # an unnamed output still gives the initializer a name
        graph.register_initializer(const)
        graph.remove(node, safe=True)
        changed = True
    return changed
