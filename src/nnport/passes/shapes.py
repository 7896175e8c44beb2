"""Shape and dtype inference with onnx's inferencer; never fatal (emitters cope with unknowns)."""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import common as ir_common


def infer_shapes(model: ir.Model) -> ir.Model:
    try:
        ir_common.ShapeInferencePass(check_type=False, strict_mode=False, data_prop=True)(model)
    except Exception:
        pass
    return model
