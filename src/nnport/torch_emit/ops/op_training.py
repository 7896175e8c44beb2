"""ai.onnx.preview.training: the optimizer steps (Adagrad, Adam, Momentum).  Each node updates
one or more tensors at once; its inputs are R, T, then the tensors, their gradients and their
accumulators as consecutive groups, and its outputs the updated groups in the same order."""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register
from ..naming import py_literal

TRAINING = "ai.onnx.preview.training"


def _f(v: float) -> str:
    """A float attribute (float32 in the file) as its shortest literal."""
    return py_literal(float(v), ir.DataType.FLOAT)


def _groups(ctx: Ctx, inputs: tuple, k: int) -> list[str]:
    """The ``k`` equal groups of the variadic inputs, each as a Python list literal."""
    items = list(inputs)
    if not items or len(items) % k or any(a is None for a in items):
        ctx.fail(f"expects R, T and {k} equal groups of tensors, got {len(items)} tensor inputs")
    n = len(items) // k
    return ["[" + ", ".join(str(a) for a in items[i * n:(i + 1) * n]) + "]" for i in range(k)]


@register("Adagrad", 1, domain=TRAINING)
def adagrad(ctx: Ctx, R: Arg, T: Arg, *inputs: Arg, decay_factor: float = 0.0,
            epsilon: float = 1e-6, norm_coefficient: float = 0.0):
    xs, gs, hs = _groups(ctx, inputs, 3)
    fn = ctx.helper("_adagrad")
    return (f"{fn}({R}, {T}, {xs}, {gs}, {hs}, norm={_f(norm_coefficient)}, "
            f"decay={_f(decay_factor)}, eps={_f(epsilon)})")


@register("Adam", 1, domain=TRAINING)
def adam(ctx: Ctx, R: Arg, T: Arg, *inputs: Arg, alpha: float = 0.9, beta: float = 0.999,
         epsilon: float = 1e-6, norm_coefficient: float = 0.0,
         norm_coefficient_post: float = 0.0):
    xs, gs, vs, hs = _groups(ctx, inputs, 4)
    fn = ctx.helper("_adam")
    return (f"{fn}({R}, {T}, {xs}, {gs}, {vs}, {hs}, alpha={_f(alpha)}, "
            f"beta={_f(beta)}, norm={_f(norm_coefficient)}, "
            f"norm_post={_f(norm_coefficient_post)}, eps={_f(epsilon)})")


@register("Momentum", 1, domain=TRAINING)
def momentum(ctx: Ctx, R: Arg, T: Arg, *inputs: Arg, alpha: float, beta: float,
             mode: str, norm_coefficient: float):
    if mode not in ("standard", "nesterov"):
        ctx.fail(f"mode {mode!r} is not 'standard' or 'nesterov'")
    xs, gs, vs = _groups(ctx, inputs, 3)
    fn = ctx.helper("_momentum")
    return (f"{fn}({R}, {T}, {xs}, {gs}, {vs}, alpha={_f(alpha)}, beta={_f(beta)}, "
            f"norm={_f(norm_coefficient)}, nesterov={mode == 'nesterov'})")
