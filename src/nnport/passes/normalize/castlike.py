"""CastLike with a known target type -> Cast, keeping every attribute (``saturate``...).

onnxscript's folder makes the same rewrite but drops ``saturate``; doing it first, correctly,
leaves it nothing to rewrite.
"""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import iter_nodes, replace_value


def castlike_to_cast(model: ir.Model) -> PassResult:
    changed = False
    for node, _ in list(iter_nodes(model.graph)):
        if node.op_type != "CastLike" or node.domain not in ("", "ai.onnx"):
            continue
        like = node.inputs[1] if len(node.inputs) > 1 else None
        dt = None
        if like is not None:
            dt = like.const_value.dtype if like.const_value is not None else like.dtype
        if dt is None or dt == ir.DataType.UNDEFINED:
            continue
        attrs = [ir.AttrInt64("to", int(dt))] + [a for a in node.attributes.values()]
        cast = ir.Node("", "Cast", [node.inputs[0]], attributes=attrs, name=node.name,
                       num_outputs=1)
        graph = node.graph
        graph.insert_before(node, cast)
        cast.outputs[0].dtype = dt
        cast.outputs[0].shape = node.outputs[0].shape
        replace_value(node.outputs[0], cast.outputs[0], keep_name=True)
        graph.remove(node, safe=True)
        changed = True
    return PassResult(model, changed)
