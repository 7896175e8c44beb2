"""Fold weight-producing subgraphs into plain tensors.

Real exports compute weights with Identity (torch's de-duplication), Constant, ConstantOfShape,
Cast, Reshape, Transpose or DequantizeLinear of constants.  onnxscript's folder does the work;
we only lift its size limits (weights are large by nature) and keep it away from ops whose
result must not be frozen (random generators).
"""
from __future__ import annotations

import onnx_ir as ir
from onnxscript.optimizer import _constant_folding

_NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
               "Multinomial", "Bernoulli"}
# Large limits: a ConstantOfShape that makes a 100M-element fc weight must fold too.
_SIZE_LIMIT = 1 << 40


def _should_fold(node: ir.Node) -> bool | None:
    # The folder only asks once every input is constant; we then always fold (weights are
    # large by nature; onnxscript's default keeps ConstantOfShape/DequantizeLinear unfolded).
    return node.op_type not in _NEVER_FOLD


def fold_constants(model: ir.Model) -> ir.Model:
    _constant_folding.fold_constants(
        model,
        onnx_shape_inference=False,
        input_size_limit=_SIZE_LIMIT,
        output_size_limit=_SIZE_LIMIT,
        should_fold=_should_fold,
    )
    return model
