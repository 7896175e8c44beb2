"""ONNX op -> ncnn layer emitters, one file per op family.  ``OPS[op_type] = fn(ctx, node)``."""
from __future__ import annotations

OPS: dict[str, "callable"] = {}


def register(*op_types: str):
    def deco(fn):
        for t in op_types:
            OPS[t] = fn
        return fn

    return deco


from . import (op_activation, op_binary, op_compare, op_conv, op_gemm, op_norm, op_pool,  # noqa: E402,F401
               op_quant, op_reduce, op_resize, op_rnn, op_shape, op_softmax)
