"""Fused nodes that nnport's own passes create (domain ``nnport``); never in a user's ONNX file.

``nnport::SDPA`` (passes/torch/fuse_attention.py): inputs Q, K, V, optional additive mask;
attributes ``scale`` and ``k_transposed`` -> ``F.scaled_dot_product_attention`` (no ``scale=``
when it is the default 1/sqrt(E) of Q's last axis).  A constant
mask (Swin's relative-position bias) is a buffer, not a trained parameter.
``nnport::Gelu`` (passes/torch/fuse_gelu.py): the erf form of GELU -> ``F.gelu``.
``nnport::Linear`` (passes/torch/fuse_linear.py): MatMul by a constant (K, N) matrix + constant bias
-> an ``nn.Linear(K, N)`` submodule.
``nnport::Unbind`` (passes/torch/fuse_unbind.py): Split into size-1 pieces, each squeezed ->
``x.unbind(axis)``.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, Transposed, register
from . import op_norm


@register("SDPA", 1, domain="nnport")
def sdpa(ctx: Ctx, Q: Arg, K: Arg, V: Arg, mask: Arg | None = None, *, scale: float = 1.0,
         k_transposed: int = 0):
    k = f"{K}.transpose(-2, -1)" if k_transposed else str(K)
    args = [str(Q), k, str(V)]
    if mask is not None:
        m = str(mask)
        if mask.value is not None and mask.value.const_value is not None:
            # a buffer, not an nn.Parameter: SDPA takes the math path (3 extra passes, 1.6x
            # slower on Swin's windows) for a mask that requires grad, even under no_grad
            m = ctx.weight(mask.value.const_value, mask.value.name or "attn_mask",
                           parameter=False)
        args.append(f"attn_mask={m}")
    if not _default_scale(Q, scale):
        args.append(f"scale={ctx.lit(np.float32(scale))}")
    return f"F.scaled_dot_product_attention({', '.join(args)})"


def _default_scale(Q: Arg, scale: float) -> bool:
    """``scale`` is SDPA's default 1/sqrt(E) for Q's static last axis E, to within 4 float32
    steps (BERT's exported sqrt(1/8) * sqrt(1/8) is 0.12499999 in float32, not 0.125)."""
    shape = Q.value.shape if Q.value is not None else None
    if shape is None or len(shape) == 0 or not isinstance(shape[-1], int) or shape[-1] <= 0:
        return False
    default = np.float32(1.0 / np.sqrt(shape[-1]))
    return abs(np.float32(scale) - default) <= 4 * np.spacing(default)


@register("Gelu", 1, domain="nnport")
def gelu(ctx: Ctx, X: Arg, *, approximate: str = "none"):
    if approximate == "tanh":
        return f"F.gelu({X}, approximate='tanh')"
    return f"F.gelu({X})"


@register("Silu", 1, domain="nnport")
def silu(ctx: Ctx, X: Arg):
    return f"F.silu({X})"


@register("Mish", 1, domain="nnport")
def mish(ctx: Ctx, X: Arg):
    return f"F.mish({X})"


@register("HardSwish", 1, domain="nnport")
def hardswish(ctx: Ctx, X: Arg):
    return f"F.hardswish({X})"


@register("LayerNorm", 1, domain="nnport")
def layer_norm(ctx: Ctx, X: Arg, Scale: Arg | None = None, B: Arg | None = None, *,
               axis: int = -1, epsilon: float = 1e-5):
    if Scale is not None:
        return op_norm.layer_norm(ctx, X, Scale, B, axis=axis, epsilon=epsilon)
    shape = ctx.shape(X)
    dims = None if shape is None else shape[axis:]
    ns = str(list(dims)) if dims is not None and None not in dims else f"{X}.shape[{axis}:]"
    return f"F.layer_norm({X}, {ns}, eps={ctx.lit(float(epsilon), ir.DataType.FLOAT)})"


@register("RMSNorm", 1, domain="nnport")
def rms_norm(ctx: Ctx, X: Arg, Scale: Arg | None = None, *, axis: int = -1,
             epsilon: float = 1e-5):
    if Scale is not None:
        return op_norm.rms_norm(ctx, X, Scale, axis=axis, epsilon=epsilon)
    shape = ctx.shape(X)
    dims = None if shape is None else shape[axis:]
    ns = str(list(dims)) if dims is not None and None not in dims else f"{X}.shape[{axis}:]"
    return f"F.rms_norm({X}, {ns}, eps={ctx.lit(float(epsilon), ir.DataType.FLOAT)})"


@register("Linear", 1, domain="nnport")
def linear(ctx: Ctx, X: Arg, W: Arg, B: Arg | None = None):
    # torch stores (out_features, in_features); transposed lazily: converting a large model
    # must not hold a transposed copy of every weight
    w = Transposed(W.value.const_value)
    b = ctx.const(B).reshape(-1) if B is not None else None
    n_out, n_in = w.shape
    named = B if B is not None else W
    hint = named.value.name if named.value is not None and named.value.name else ""
    for suffix in (".bias", "_bias", ".weight", "_weight"):
        if hint.endswith(suffix):
            hint = hint[: -len(suffix)]
    if B is None and (not hint or hint.startswith(("val_", "onnx::", "onnx_"))):
        hint = ctx.node.name.strip("/").replace("/", "_") if ctx.node.name else hint
        for suffix in ("_MatMul", "_matmul"):
            if hint.endswith(suffix):
                hint = hint[: -len(suffix)]
    dt = ctx.dtype(W)
    kw = "" if dt == ir.DataType.FLOAT else f", dtype={ctx.dtype_src(dt)}"
    if b is None:
        kw += ", bias=False"
    mod = ctx.module(hint or ctx.module_hint(W), f"nn.Linear({n_in}, {n_out}{kw})",
                     {"weight": w, "bias": b})
    return f"{mod}({X})"


@register("Unbind", 1, domain="nnport")
def unbind(ctx: Ctx, X: Arg, *, axis: int = 0):
    return f"{X}.unbind({axis})"
