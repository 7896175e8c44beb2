"""Pre-flight: every node that has no ncnn mapping, listed at once (with the reason, for
QuantizeLinear/DequantizeLinear on activations whose integer tensor ncnn cannot hold, and for
the ops left unmapped because ncnn has no exact form of them: ``NO_EXACT_FORM``)."""
from __future__ import annotations

import onnx_ir as ir

from ..errors import UnsupportedOpsError
from .legalize.probe import static_values


def unsupported(model: ir.Model) -> list[dict]:
    from ..registry import model_opsets, norm_domain
    from .ops import REGISTRY
    from .ops.op_compare import NO_EXACT_FORM
    from .ops.op_quant import structure_problem

    static = static_values(model)
    opsets = model_opsets(model)
    outputs = {v.name for v in model.graph.outputs}
    bad = []
    for node in model.graph:
        if all(o.name in static for o in node.outputs if o.name):
            continue  # shape arithmetic: folded into params
        why = None
        dom = norm_domain(node.domain)
        opset = opsets.get(dom, 1)
        if REGISTRY.lookup(dom, node.op_type, opset) is not None:
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            why = structure_problem(node, outputs, lambda v: list(v.consumers()))
            if why is None:
                continue
        elif dom == "":
            why = NO_EXACT_FORM.get(node.op_type)
        item = {"domain": node.domain, "op_type": node.op_type, "opset": opset,
                "node": node.name or f"({node.op_type} -> {node.outputs[0].name})"}
        if why:
            item["why"] = why
        bad.append(item)
    return bad


def preflight(model: ir.Model) -> None:
    bad = unsupported(model)
    if bad:
        raise UnsupportedOpsError("ncnn", bad)
