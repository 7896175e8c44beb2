"""Activations and unary math.

ncnn params (operators.md): ReLU 0=slope; Clip 0=min 1=max; Sigmoid; TanH; HardSigmoid 0=alpha
1=beta; HardSwish 0=alpha 1=beta; Swish; GELU 0=fast_gelu; ELU 0=alpha; SELU 0=alpha 1=lambda;
PReLU 0=num_slope (slope raw); Softplus; Mish; UnaryOp 0=op_type (0 abs 1 neg 2 floor 3 ceil
4 square 5 sqrt 6 rsqrt 7 exp 8 log 9 sin 10 cos 11 tan 12 asin 13 acos 14 atan 15 reciprocal
16 tanh 17 log10 18 round 19 trunc).
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from . import register
from ..emit import attrs_of

UNARY = {"Abs": 0, "Neg": 1, "Floor": 2, "Ceil": 3, "Sqrt": 5, "Exp": 7, "Log": 8, "Sin": 9,
         "Cos": 10, "Tan": 11, "Asin": 12, "Acos": 13, "Atan": 14, "Reciprocal": 15,
         "Round": 18}


@register(*UNARY)
def unary(ctx, node):
    ctx.unary("UnaryOp", {0: UNARY[node.op_type]})


@register("Identity", "Dropout")
def identity(ctx, node):
    x = node.inputs[0]
    if len(node.outputs) > 1 and node.outputs[1].name:
        ctx.fail("Dropout mask output has no ncnn equivalent")
    if node.outputs[0].name in ctx.graph_outputs:
        ctx.unary("Noop")
    else:
        ctx.alias(node.outputs[0], ctx.blob(x), ctx.drop(x))


# ONNX activations that are one parameterless ncnn layer
_SAME = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "Softplus": "Softplus",
         "Mish": "Mish"}


@register(*_SAME)
def parameterless(ctx, node):
    ctx.unary(_SAME[node.op_type])


@register("LeakyRelu")
def leaky(ctx, node):
    ctx.unary("ReLU", {0: float(attrs_of(node).get("alpha", 0.01))})


@register("Elu")
def elu(ctx, node):
    ctx.unary("ELU", {0: float(attrs_of(node).get("alpha", 1.0))})


@register("Selu")
def selu(ctx, node):
    a = attrs_of(node)
    ctx.unary("SELU", {0: float(a.get("alpha", 1.67326319217681884765625)),
                       1: float(a.get("gamma", 1.05070102214813232421875))})


@register("HardSigmoid")
def hard_sigmoid(ctx, node):
    a = attrs_of(node)
    ctx.unary("HardSigmoid", {0: float(a.get("alpha", 0.2)), 1: float(a.get("beta", 0.5))})


@register("HardSwish")
def hard_swish(ctx, node):
    ctx.unary("HardSwish", {0: 1.0 / 6, 1: 0.5})


@register("Gelu")
def gelu(ctx, node):
    approx = attrs_of(node).get("approximate", "none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    ctx.unary("GELU", {0: int(approx == "tanh")})


@register("Clip")
def clip(ctx, node):
    a = attrs_of(node)
    lo = a.get("min", -3.402823e38)
    hi = a.get("max", 3.402823e38)
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        lo = float(ctx.need_const(node.inputs[1], "Clip min"))
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        hi = float(ctx.need_const(node.inputs[2], "Clip max"))
    ctx.unary("Clip", {0: float(lo), 1: float(hi)})


@register("PRelu")
def prelu(ctx, node):
    x, slope = node.inputs
    s = np.asarray(ctx.need_const(slope, "the PRelu slope"), np.float32)
    nsh = ctx.nshape(x)
    c = nsh[0] if len(nsh) >= 2 else (nsh[0] if nsh else 1)
    if s.size == 1:
        ctx.unary("PReLU", {0: 1}, x=x)
        ctx.g.layers[-1].weights = [Weight(s.reshape(1))]
        return
    if s.size != c or sorted(s.shape)[-1] != s.size:
        ctx.fail("PRelu slope must be a scalar or per-channel for ncnn")
    ctx.add("PReLU", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))], {0: int(c)},
            [Weight(s.reshape(-1))])
