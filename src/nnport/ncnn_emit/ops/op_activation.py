"""Activations and unary math.

ncnn params (operators.md): ReLU 0=slope; Clip 0=min 1=max; Sigmoid; TanH; HardSigmoid 0=alpha
1=beta; HardSwish 0=alpha 1=beta; Swish; GELU 0=fast_gelu; ELU 0=alpha; SELU 0=alpha 1=lambda;
PReLU 0=num_slope (slope raw); Softplus; Mish; CELU 0=alpha; Shrink 0=bias 1=lambd; Erf;
CumulativeSum 0=axis (outermost ncnn dim first); UnaryOp 0=op_type (0 abs 1 neg 2 floor 3 ceil
4 square 5 sqrt 6 rsqrt 7 exp 8 log 9 sin 10 cos 11 tan 12 asin 13 acos 14 atan 15 reciprocal
16 tanh 17 log10 18 round 19 trunc).
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from ..registry import register
from .common import attrs_of, reshape_params

UNARY = {"Abs": 0, "Neg": 1, "Floor": 2, "Ceil": 3, "Sqrt": 5, "Exp": 7, "Log": 8, "Sin": 9,
         "Cos": 10, "Tan": 11, "Asin": 12, "Acos": 13, "Atan": 14, "Reciprocal": 15,
         "Round": 18}
# the spec versions each was reviewed against: version 1 of the older ones only adds the
# legacy consumed_inputs attribute, which onnxruntime does not run; later ones add types
_UNARY_VERSIONS = {
    **dict.fromkeys(("Abs", "Neg", "Floor", "Ceil", "Sqrt", "Exp", "Log", "Reciprocal"), (6, 13)),
    **dict.fromkeys(("Sin", "Cos", "Tan", "Asin", "Acos", "Atan"), (7, 22)),
    "Round": (11, 22)}


@register(_UNARY_VERSIONS)
def unary(ctx, node):
    ctx.unary("UnaryOp", {0: UNARY[node.op_type]})


# Dropout 1 and 6 had is_test (0 trains), which onnxruntime does not run: from 7 it is the
# identity at inference, and from 12 training_mode is an input, refused unless a constant false
@register({"Identity": (1, 13, 14, 16, 19, 21, 23, 24, 25), "Dropout": (7, 10, 12, 13, 22)})
def identity(ctx, node):
    x = node.inputs[0]
    if len(node.outputs) > 1 and node.outputs[1].name:
        ctx.fail("Dropout mask output has no ncnn equivalent")
    if node.op_type == "Dropout" and len(node.inputs) > 2 and node.inputs[2] is not None \
            and node.inputs[2].name:
        mode = ctx.const(node.inputs[2])
        if mode is None or bool(np.ravel(mode)[0]):
            ctx.fail("Dropout in training mode has no ncnn equivalent")
    if node.outputs[0].name in ctx.graph_outputs:
        ctx.unary("Noop")
    else:
        ctx.alias(node.outputs[0], ctx.blob(x), ctx.drop(x))


# ONNX activations that are one parameterless ncnn layer
_SAME = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "Softplus": "Softplus",
         "Mish": "Mish"}


@register({"Relu": (6, 13, 14), "Sigmoid": (6, 13), "Tanh": (6, 13), "Softplus": (1, 22),
           "Mish": (18, 22)})
def parameterless(ctx, node):
    ctx.unary(_SAME[node.op_type])


@register("LeakyRelu", (6, 16))
def leaky(ctx, node):
    ctx.unary("ReLU", {0: float(attrs_of(node).get("alpha", 0.01))})


@register("Elu", (6, 22))
def elu(ctx, node):
    ctx.unary("ELU", {0: float(attrs_of(node).get("alpha", 1.0))})


@register("Selu", (6, 22))
def selu(ctx, node):
    a = attrs_of(node)
    ctx.unary("SELU", {0: float(a.get("alpha", 1.67326319217681884765625)),
                       1: float(a.get("gamma", 1.05070102214813232421875))})


@register("HardSigmoid", (6, 22))
def hard_sigmoid(ctx, node):
    a = attrs_of(node)
    ctx.unary("HardSigmoid", {0: float(a.get("alpha", 0.2)), 1: float(a.get("beta", 0.5))})


@register("HardSwish", (14, 22))
def hard_swish(ctx, node):
    ctx.unary("HardSwish", {0: 1.0 / 6, 1: 0.5})


@register("Gelu", 20)
def gelu(ctx, node):
    approx = attrs_of(node).get("approximate", "none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    ctx.unary("GELU", {0: int(approx == "tanh")})


@register("Clip", (6, 11, 12, 13))  # 6: min/max attributes; 11: inputs
def clip(ctx, node):
    a = attrs_of(node)
    lo = a.get("min", -3.402823e38)
    hi = a.get("max", 3.402823e38)
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        lo = float(ctx.need_const(node.inputs[1], "Clip min"))
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        hi = float(ctx.need_const(node.inputs[2], "Clip max"))
    ctx.unary("Clip", {0: float(lo), 1: float(hi)})


@register("PRelu", (7, 9, 16))  # 7: slope broadcast to X
def prelu(ctx, node):
    x, slope = node.inputs
    s = np.asarray(ctx.need_const(slope, "the PRelu slope"), np.float32)
    nsh = ctx.nshape(x)
    c = nsh[0] if len(nsh) >= 2 else (nsh[0] if nsh else 1)
    if s.size == 1:
        ctx.unary("PReLU", {0: 1}, x=x)
        ctx.g.layers[-1].weights = [Weight(s.reshape(1))]
        return
    xs = ctx.shape(x)
    aligned = (1,) * (len(xs) - s.ndim) + s.shape
    if not ctx.drop(x) and len(xs) >= 2 and s.ndim <= len(xs) and aligned[1] == s.size == xs[1]:
        # a batch of N held whole: ncnn's PReLU slopes its outermost axis, so the batch is
        # folded into the channels, (N*C, rest), with the slopes repeated N times
        n, rest = int(xs[0]), int(np.prod(xs[2:], dtype=np.int64))
        y = node.outputs[0]
        flat = ctx.add("Reshape", [ctx.blob(x)], [ctx.g.unique(y.name + "_nc")],
                       reshape_params(ctx, (n * s.size, rest), None))
        mid = ctx.add("PReLU", [flat], [ctx.g.unique(y.name + "_pre")], {0: n * s.size},
                      [Weight(np.tile(s.reshape(-1), n))])
        ctx.add("Reshape", [mid], [ctx.out(y, False)], reshape_params(ctx, xs, None))
        return
    if s.size != c or sorted(s.shape)[-1] != s.size:
        ctx.fail("PRelu slope must be a scalar or per-channel for ncnn")
    ctx.add("PReLU", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))], {0: int(c)},
            [Weight(s.reshape(-1))])


@register("Celu", (12, 28))
def celu(ctx, node):
    ctx.unary("CELU", {0: float(attrs_of(node).get("alpha", 1.0))})


@register("Shrink", 9)
def shrink(ctx, node):
    a = attrs_of(node)
    ctx.unary("Shrink", {0: float(a.get("bias", 0.0)), 1: float(a.get("lambd", 0.5))})


@register("Erf", (9, 13))
def erf(ctx, node):
    ctx.unary("Erf")


@register("Sign", (9, 13))
def sign(ctx, node):
    """Clip(x * 1e38, -1, 1): exactly -1, 0, 1 for every normal float (BinaryOp 0=2 mul
    1=with_scalar 2=b)."""
    ctx.unary("BinaryOp", {0: 2, 1: 1, 2: 1e38})
    ctx.then(node.outputs[0], [("Clip", {0: -1.0, 1: 1.0})])


def _mix(ctx, node, ea: list, eb: list, op: int, post: list):
    """y = post(ea(x) <op> eb(x)): two unary chains of x joined by one BinaryOp."""
    x, y = node.inputs[0], node.outputs[0]
    src = ctx.blob(x)
    ends = []
    for chain, tag in ((ea, "a"), (eb, "b")):
        cur = src
        for typ, p in chain:
            cur = ctx.add(typ, [cur], [ctx.g.unique(f"{y.name}_{tag}")], p)
        ends.append(cur)
    out = ctx.out(y, ctx.drop(x))
    cur = ctx.add("BinaryOp", ends, [out if not post else ctx.g.unique(y.name + "_ab")],
                  {0: op})
    for i, (typ, p) in enumerate(post):
        cur = ctx.add(typ, [cur], [out if i == len(post) - 1 else ctx.g.unique(y.name + "_t")],
                      p)


_EXP, _LOG, _SQRT, _SQ = ({0: 7}, {0: 8}, {0: 5}, {0: 4})
_HALF = ("BinaryOp", {0: 2, 1: 1, 2: 0.5})


@register({"Sinh": (9, 22), "Cosh": (9, 22)})
def sinh_cosh(ctx, node):
    """(exp(x) -/+ exp(-x)) / 2 (UnaryOp 7=exp 1=neg; BinaryOp 1=sub 0=add)."""
    _mix(ctx, node, [("UnaryOp", _EXP)], [("UnaryOp", {0: 1}), ("UnaryOp", _EXP)],
         1 if node.op_type == "Sinh" else 0, [_HALF])


@register({"Asinh": (9, 22), "Acosh": (9, 22)})
def asinh_acosh(ctx, node):
    """log(x + sqrt(x^2 +/- 1)) (UnaryOp 4=square 5=sqrt 8=log)."""
    k = 1.0 if node.op_type == "Asinh" else -1.0
    _mix(ctx, node, [], [("UnaryOp", _SQ), ("BinaryOp", {0: 0, 1: 1, 2: k}),
                         ("UnaryOp", _SQRT)], 0, [("UnaryOp", _LOG)])


@register("Atanh", (9, 22))
def atanh(ctx, node):
    """log((1 + x) / (1 - x)) / 2 (BinaryOp 0=add 7=rsub with a scalar, 3=div)."""
    _mix(ctx, node, [("BinaryOp", {0: 0, 1: 1, 2: 1.0})], [("BinaryOp", {0: 7, 1: 1, 2: 1.0})],
         3, [("UnaryOp", _LOG), _HALF])


@register("Softsign", (1, 22))
def softsign(ctx, node):
    """x / (1 + |x|)."""
    _mix(ctx, node, [], [("UnaryOp", {0: 0}), ("BinaryOp", {0: 0, 1: 1, 2: 1.0})], 3, [])


@register("CumSum", (11, 14))
def cumsum(ctx, node):
    x = node.inputs[0]
    a = attrs_of(node)
    if a.get("exclusive", 0) or a.get("reverse", 0):
        ctx.fail("CumSum with exclusive or reverse has no ncnn equivalent")
    axis = int(np.asarray(ctx.need_const(node.inputs[1], "CumSum axis")).ravel()[0])
    if ctx.shape(x)[axis] == 1:  # a sum of one element (the batch of 1, say)
        return identity(ctx, node)
    ctx.unary("CumulativeSum", {0: ctx.axis(x, axis)})
