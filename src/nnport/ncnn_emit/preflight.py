"""Pre-flight: every node that has no ncnn mapping, listed at once."""
from __future__ import annotations

import onnx_ir as ir

from ..errors import UnsupportedOpsError
from .legalize.probe import static_values


def unsupported(model: ir.Model) -> list[dict]:
    from .ops import OPS

    static = static_values(model)
    opsets = model.opset_imports
    bad = []
    for node in model.graph:
        if all(o.name in static for o in node.outputs if o.name):
            continue  # shape arithmetic: folded into params
        if node.domain in ("", "ai.onnx") and node.op_type in OPS:
            continue
        bad.append({"domain": node.domain, "op_type": node.op_type,
                    "opset": opsets.get(node.domain, opsets.get("", 0)),
                    "node": node.name or f"({node.op_type} -> {node.outputs[0].name})"})
    return bad


def preflight(model: ir.Model) -> None:
    bad = unsupported(model)
    if bad:
        raise UnsupportedOpsError("ncnn", bad)
