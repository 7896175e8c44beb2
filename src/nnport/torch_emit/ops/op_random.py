"""Random generators: RandomNormal/RandomUniform(+Like), Bernoulli, Multinomial.

They print as ``torch.randn``/``torch.rand``/``torch.bernoulli``/``torch.multinomial``.  ONNX's
``seed`` makes the output repeatable: the generated code then draws from a
``torch.Generator().manual_seed(seed)`` created at the call (torch's stream differs from any
other runtime's, so only shapes and dtypes are comparable across runtimes).
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register


def _gen(seed) -> str:
    if seed is None:
        return ""
    return f", generator=torch.Generator().manual_seed({int(seed)})"


def _shape_lit(ctx: Ctx, shape) -> str:
    return ctx.lit([int(s) for s in shape])


def _normal(ctx: Ctx, shape: str, dtype: str, mean: float, scale: float, seed, device: str):
    out = f"torch.randn({shape}, dtype={dtype}{_gen(seed)})"
    if seed is not None and device:
        out = f"{out}.to({device})"
    elif device:
        out = out[:-1] + f", device={device})"
    if scale != 1.0:
        out = f"{out} * {ctx.lit(float(scale))}"
    if mean != 0.0:
        out = f"{out} + {ctx.lit(float(mean))}"
    return out


def _uniform(ctx: Ctx, shape: str, dtype: str, low: float, high: float, seed, device: str):
    out = f"torch.rand({shape}, dtype={dtype}{_gen(seed)})"
    if seed is not None and device:
        out = f"{out}.to({device})"
    elif device:
        out = out[:-1] + f", device={device})"
    if high - low != 1.0:
        out = f"{out} * {ctx.lit(float(high - low))}"
    if low != 0.0:
        out = f"{out} + {ctx.lit(float(low))}"
    return out


@register("RandomNormal", (1, 22))
def random_normal(ctx: Ctx, *, shape, dtype: int = 1, mean: float = 0.0, scale: float = 1.0,
                  seed: float | None = None):
    return _normal(ctx, _shape_lit(ctx, shape), ctx.dtype_src(dtype), mean, scale, seed, "")


@register("RandomUniform", (1, 22))
def random_uniform(ctx: Ctx, *, shape, dtype: int = 1, low: float = 0.0, high: float = 1.0,
                   seed: float | None = None):
    return _uniform(ctx, _shape_lit(ctx, shape), ctx.dtype_src(dtype), low, high, seed, "")


def _like_dtype(ctx: Ctx, input: Arg, dtype: int | None) -> str:
    if dtype is not None:
        return ctx.dtype_src(dtype)
    dt = ctx.dtype(input)
    return ctx.dtype_src(dt) if dt is not None else f"{input}.dtype"


@register("RandomNormalLike", (1, 22))
def random_normal_like(ctx: Ctx, input: Arg, *, dtype: int | None = None, mean: float = 0.0,
                       scale: float = 1.0, seed: float | None = None):
    return _normal(ctx, f"{input}.shape", _like_dtype(ctx, input, dtype), mean, scale, seed,
                   f"{input}.device")


@register("RandomUniformLike", (1, 22))
def random_uniform_like(ctx: Ctx, input: Arg, *, dtype: int | None = None, low: float = 0.0,
                        high: float = 1.0, seed: float | None = None):
    return _uniform(ctx, f"{input}.shape", _like_dtype(ctx, input, dtype), low, high, seed,
                    f"{input}.device")


@register("Bernoulli", (15, 22))
def bernoulli(ctx: Ctx, input: Arg, *, dtype: int | None = None, seed: float | None = None):
    x = str(input)
    if seed is not None:
        out = f"torch.bernoulli({x}.cpu(){_gen(seed)}).to({x}.device)"
    else:
        out = f"torch.bernoulli({x})"
    if dtype is not None and ir.DataType(dtype) != ctx.dtype(input):
        out = f"{out}.to({ctx.dtype_src(dtype)})"
    return out


@register("Multinomial", (7, 22))
def multinomial(ctx: Ctx, input: Arg, *, dtype: int = 6, sample_size: int = 1,
                seed: float | None = None):
    # ONNX input holds unnormalized log-probabilities per batch row
    probs = f"torch.softmax({input}, dim=-1)"
    if seed is not None:
        out = f"torch.multinomial({probs}.cpu(), {sample_size}, replacement=True{_gen(seed)})" \
              f".to({input}.device)"
    else:
        out = f"torch.multinomial({probs}, {sample_size}, replacement=True)"
    return f"{out}.to({ctx.dtype_src(dtype)})"
