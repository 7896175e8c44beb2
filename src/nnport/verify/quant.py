"""The quantization step of every tensor of a quantized (QDQ / QOperator) ONNX model.

Two correct implementations of an int8 model may differ by one quantization step: a value that
lands within float rounding of a rounding boundary goes up in one and down in the other (float
accumulation order differs between kernels).  That is the nature of int8, not a conversion bug,
so ``verify`` and ``--locate`` accept a difference of at most one step on such tensors.

The step of a tensor (``quant_steps``), the first rule that applies, in the graph's order:

1. the output of a DequantizeLinear: its ``x_scale`` (the largest, when per channel);
2. a float value that a QuantizeLinear consumes: that QuantizeLinear's ``y_scale`` (a smaller
   difference moves its quantized value by at most one level);
3. the output of a QuantizeLinear (or a QLinear* op): its output scale; compared in integer
   units, one step is 1;
4. any other value computed from a tensor that has a step: the largest step among its inputs
   (the "last QuantizeLinear/DequantizeLinear feeding" it).  Weights (constant inputs) do not
   count.

Tensors with no quantization upstream keep the dtype tolerance.  Integer tensors other than the
quantized types (an ArgMax index, a shape) stay exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ..io import ModelProto

QUANT_INT_DTYPES = {"int8", "uint8", "int16", "uint16", "int4", "uint4"}

# op -> (index of its output scale input, or None when the output is float)
_QLINEAR_OUT_SCALE = {
    "QLinearConv": 6, "QLinearMatMul": 6, "QLinearAdd": 6, "QLinearMul": 6,
    "QLinearSigmoid": 3, "QLinearLeakyRelu": 3, "QLinearGlobalAveragePool": 3,
    "QLinearAveragePool": 3, "QLinearSoftmax": 3, "QGemm": 7, "QLinearConcat": 0,
}


@dataclass
class QuantStep:
    step: float  # in the tensor's float units (the scale)
    source: str  # "DequantizeLinear 'name'" ...
    rule: int  # 1-4, as in the module docstring


def _scale(v: ir.Value | None) -> float | None:
    if v is None:
        return None
    arr = None
    if v.const_value is not None:
        arr = v.const_value.numpy()
    else:
        p = v.producer()
        if p is not None and p.op_type == "Constant" and "value" in p.attributes:
            arr = p.attributes["value"].value.numpy()
    if arr is None or arr.size == 0:
        return None
    arr = np.abs(np.asarray(arr, dtype=np.float64))
    return float(arr.max()) if np.all(np.isfinite(arr)) else None


def _label(node: ir.Node) -> str:
    return f"{node.op_type} {node.name or '<unnamed>'!r}"


def quant_steps(model) -> dict[str, QuantStep]:
    """Tensor name -> its quantization step, for the main graph of ``model`` (an
    ``onnx.ModelProto``, an ``ir.Model`` or a path)."""
    if isinstance(model, ModelProto):
        from ..io import from_proto

        model = from_proto(model)
    elif not isinstance(model, ir.Model):
        from ..io import load_model

        model = load_model(model, lazy=True)
    graph = model.graph
    if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or
               n.op_type in _QLINEAR_OUT_SCALE for n in graph):
        return {}
    steps: dict[int, QuantStep] = {}  # id(value) -> step
    # rule 2 first: the step of the QuantizeLinear that consumes a value
    consumed: dict[int, QuantStep] = {}
    for node in graph:
        if node.op_type == "QuantizeLinear" and len(node.inputs) > 1 and node.inputs[0] is not None:
            s = _scale(node.inputs[1])
            if s is not None:
                old = consumed.get(id(node.inputs[0]))
                if old is None or s > old.step:
                    consumed[id(node.inputs[0])] = QuantStep(s, _label(node), 2)
    try:
        nodes = list(graph)
        from onnx_ir.passes import common as ir_common

        ir_common.TopologicalSortPass()(model)
        nodes = list(model.graph)
    except Exception:
        pass
    for node in nodes:
        op = node.op_type
        outs = [o for o in node.outputs if o is not None]
        if op == "DequantizeLinear" and len(node.inputs) > 1:
            s = _scale(node.inputs[1])
            if s is not None and node.inputs[0] is not None and \
                    node.inputs[0].const_value is None:
                for o in outs:
                    steps[id(o)] = QuantStep(s, _label(node), 1)
                continue
        if op == "QuantizeLinear" and len(node.inputs) > 1:
            s = _scale(node.inputs[1])
            if s is not None:
                for o in outs:
                    steps[id(o)] = QuantStep(s, _label(node), 3)
                continue
        if op in _QLINEAR_OUT_SCALE and node.domain in ("", "ai.onnx", "com.microsoft"):
            idx = _QLINEAR_OUT_SCALE[op]
            s = _scale(node.inputs[idx]) if idx < len(node.inputs) else None
            if s is not None:
                for o in outs:
                    steps[id(o)] = QuantStep(s, _label(node), 3)
                continue
        upstream = [steps[id(v)] for v in node.inputs
                    if v is not None and v.const_value is None and id(v) in steps]
        if upstream:
            best = max(upstream, key=lambda q: q.step)
            for o in outs:
                steps[id(o)] = QuantStep(best.step, best.source, 4)
    out: dict[str, QuantStep] = {}
    for node in nodes:
        for o in node.outputs:
            if o is None or not o.name:
                continue
            q = consumed.get(id(o)) or steps.get(id(o))
            if q is not None:
                out[o.name] = q
    return out
