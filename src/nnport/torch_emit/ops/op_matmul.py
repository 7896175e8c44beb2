"""Matrix products: MatMul (``a @ b``) and Gemm (``nn.Linear`` when it is one, else explicit math)."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register

_LINEAR_TYPES = {ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16}


@register("MatMul", (1, 9, 13))
def matmul(ctx: Ctx, A: Arg, B: Arg):
    return f"{A} @ {B}"


def _linear_bias(ctx: Ctx, C: Arg | None, n: int) -> tuple[bool, np.ndarray | None]:
    """(ok, bias) when C is absent or a constant that broadcasts like a length-n bias vector."""
    if C is None:
        return True, None
    c = ctx.const(C)
    if c is None or c.ndim > 2:
        return False, None
    if c.ndim == 2 and c.shape[0] != 1:
        return False, None
    flat = c.reshape(-1)
    if flat.size == n:
        return True, flat.copy()
    if flat.size == 1:
        return True, np.full((n,), flat[0], dtype=c.dtype)
    return False, None


@register("Gemm", (1, 6, 7, 9, 11, 13))
def gemm(ctx: Ctx, A: Arg, B: Arg, C: Arg | None = None, *, alpha: float = 1.0,
         beta: float = 1.0, transA: int = 0, transB: int = 0, broadcast: int = 0):
    b = ctx.const(B)
    dt = ctx.dtype(A)
    if (b is not None and b.ndim == 2 and not transA and alpha == 1.0
            and (beta == 1.0 or C is None) and dt in _LINEAR_TYPES and ctx.dtype(B) == dt
            and (C is None or ctx.dtype(C) == dt)):
        weight = b if transB else b.T
        n, k = weight.shape
        ok, bias = _linear_bias(ctx, C, n)
        if ok:
            bias_arg = "" if bias is not None else ", bias=False"
            mod = ctx.module(ctx.module_hint(B), f"nn.Linear({k}, {n}{bias_arg})",
                             {"weight": np.ascontiguousarray(weight), "bias": bias})
            return f"{mod}({A})"
    a = f"{A}.t()" if transA else str(A)
    bb = f"{B}.t()" if transB else str(B)
    out = f"{a} @ {bb}"
    if alpha != 1.0:
        out = f"{ctx.lit(float(alpha), ir.DataType.FLOAT)} * ({out})"
    if C is not None and beta != 0.0:
        c = str(C)
        if beta != 1.0:
            c = f"{ctx.lit(float(beta), ir.DataType.FLOAT)} * {C}"
        out = f"{out} + {c}"
    return out
