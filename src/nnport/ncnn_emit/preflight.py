"""Pre-flight: every node that has no ncnn mapping, listed at once (with the reason, for
QuantizeLinear/DequantizeLinear on activations whose integer tensor ncnn cannot hold)."""
from __future__ import annotations

import onnx_ir as ir

from ..errors import UnsupportedOpsError
from .legalize.probe import static_values


def unsupported(model: ir.Model) -> list[dict]:
    from .ops import OPS
    from .ops.op_quant import structure_problem

    static = static_values(model)
    opsets = model.opset_imports
    outputs = {v.name for v in model.graph.outputs}
    bad = []
    for node in model.graph:
        if all(o.name in static for o in node.outputs if o.name):
            continue  # shape arithmetic: folded into params
        why = None
        if node.domain in ("", "ai.onnx") and node.op_type in OPS:
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            why = structure_problem(node, outputs, lambda v: list(v.consumers()))
            if why is None:
                continue
        item = {"domain": node.domain, "op_type": node.op_type,
                "opset": opsets.get(node.domain, opsets.get("", 0)),
                "node": node.name or f"({node.op_type} -> {node.outputs[0].name})"}
        if why:
            item["why"] = why
        bad.append(item)
    return bad


def preflight(model: ir.Model) -> None:
    bad = unsupported(model)
    if bad:
        raise UnsupportedOpsError("ncnn", bad)
