"""Element-wise math: unary functions, binary arithmetic with broadcasting, variadic Sum/Max/...

Binary ops print as Python operators (``a + b``); a scalar constant operand of the same element
type prints as a Python literal (``x * 0.5``), which torch applies in the tensor's own dtype.
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register

# ---- unary ops: ONNX name -> (format, versions) --------------------------------------------
_UNARY = {
    "Abs": ("torch.abs({x})", (1, 6, 13)),
    "Neg": ("-{x}", (1, 6, 13)),
    "Exp": ("torch.exp({x})", (1, 6, 13)),
    "Log": ("torch.log({x})", (1, 6, 13)),
    "Sqrt": ("torch.sqrt({x})", (1, 6, 13)),
    "Reciprocal": ("torch.reciprocal({x})", (1, 6, 13)),
    "Floor": ("torch.floor({x})", (1, 6, 13)),
    "Ceil": ("torch.ceil({x})", (1, 6, 13)),
    "Round": ("torch.round({x})", (11, 22)),
    "Sign": ("torch.sign({x})", (9, 13)),
    "Sin": ("torch.sin({x})", (7, 22)),
    "Cos": ("torch.cos({x})", (7, 22)),
    "Tan": ("torch.tan({x})", (7, 22)),
    "Asin": ("torch.asin({x})", (7, 22)),
    "Acos": ("torch.acos({x})", (7, 22)),
    "Atan": ("torch.atan({x})", (7, 22)),
    "Sinh": ("torch.sinh({x})", (9, 22)),
    "Cosh": ("torch.cosh({x})", (9, 22)),
    "Asinh": ("torch.asinh({x})", (9, 22)),
    "Acosh": ("torch.acosh({x})", (9, 22)),
    "Atanh": ("torch.atanh({x})", (9, 22)),
    "Tanh": ("torch.tanh({x})", (1, 6, 13)),
    "Sigmoid": ("torch.sigmoid({x})", (1, 6, 13)),
    "Erf": ("torch.erf({x})", (9, 13)),
    "Relu": ("torch.relu({x})", (1, 6, 13, 14)),
    "Softsign": ("F.softsign({x})", (1, 22)),
    "Softplus": ("F.softplus({x})", (1, 22)),
    "Mish": ("F.mish({x})", (18, 22)),
    "HardSwish": ("F.hardswish({x})", (14, 22)),
    "Not": ("torch.logical_not({x})", (1,)),
    "BitwiseNot": ("torch.bitwise_not({x})", (18,)),
    "IsNaN": ("torch.isnan({x})", (9, 13, 20)),
}


def _make_unary(fmt: str):
    def emit(ctx: Ctx, X: Arg):
        return fmt.format(x=X)

    return emit


for _name, (_fmt, _versions) in _UNARY.items():
    register(_name, _versions)(_make_unary(_fmt))


def _scalar_literal(ctx: Ctx, const: Arg, other: Arg) -> str | None:
    """``const`` as a Python literal when that keeps ONNX semantics (same dtype as ``other``,
    a single element, and not deciding the result's shape)."""
    arr = ctx.const(const)
    if arr is None or arr.size != 1 or ctx.is_const(other):
        return None
    dt, odt = ctx.dtype(const), ctx.dtype(other)
    if dt is None or dt != odt or dt not in _LITERAL_TYPES:
        return None
    r_other = ctx.rank(other)
    if r_other is None or arr.ndim > r_other:
        return None  # broadcasting with the constant could add dims
    return ctx.lit(arr.reshape(()).item(), dt)


_LITERAL_TYPES = {ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16,
                  ir.DataType.INT64, ir.DataType.INT32}


def _operands(ctx: Ctx, A: Arg, B: Arg) -> tuple[str, str]:
    a = _scalar_literal(ctx, A, B) or str(A)
    b = _scalar_literal(ctx, B, A) or str(B)
    return a, b


def _legacy_broadcast(ctx: Ctx, A: Arg, B: Arg, broadcast: int, axis) -> str:
    """Opset < 7 binary ops: ``broadcast=1`` aligns B to A starting at ``axis``."""
    if not broadcast or axis is None:
        return str(B)
    ra, rb = ctx.rank(A), ctx.rank(B)
    if ra is None or rb is None:
        ctx.fail("legacy broadcast with an axis needs known ranks")
    ax = axis if axis >= 0 else axis + ra
    trailing = ra - ax - rb
    if trailing <= 0:
        return str(B)
    return f"{B}.reshape({B}.shape + (1,) * {trailing})"


def _binary(op: str, fn: str | None = None):
    def emit(ctx: Ctx, A: Arg, B: Arg, *, broadcast: int = 0, axis: int | None = None,
             consumed_inputs=None):
        if broadcast and axis is not None:
            B = Arg(_legacy_broadcast(ctx, A, B, broadcast, axis), B.value)
        a, b = _operands(ctx, A, B)
        if fn is not None:
            return f"{fn}({a}, {b})"
        return f"{a} {op} {b}"

    return emit


register("Add", (1, 6, 7, 13, 14))(_binary("+"))
register("Sub", (1, 6, 7, 13, 14))(_binary("-"))
register("Mul", (1, 6, 7, 13, 14))(_binary("*"))


@register("Div", (1, 6, 7, 13, 14))
def div(ctx: Ctx, A: Arg, B: Arg, *, broadcast: int = 0, axis: int | None = None,
        consumed_inputs=None):
    if broadcast and axis is not None:
        B = Arg(_legacy_broadcast(ctx, A, B, broadcast, axis), B.value)
    dt = ctx.dtype(A)
    if dt is not None and dt.is_integer():
        # ONNX integer division truncates toward zero (C semantics)
        return f"torch.div({A}, {B}, rounding_mode='trunc')"
    a, b = _operands(ctx, A, B)
    return f"{a} / {b}"


@register("Pow", (1, 7, 12, 13, 15))
def pow_(ctx: Ctx, X: Arg, Y: Arg, *, broadcast: int = 0, axis: int | None = None):
    if broadcast and axis is not None:
        Y = Arg(_legacy_broadcast(ctx, X, Y, broadcast, axis), Y.value)
    y = ctx.const(Y)
    xdt = ctx.dtype(X)
    if y is not None and y.size == 1 and xdt is not None and xdt.is_floating_point():
        v = float(y.reshape(()).item())
        if v == 2.0:
            return f"{X} * {X}"
        if v == 0.5:
            return f"torch.sqrt({X})"
        if v == 1.0:
            return f"{X}"
        if ctx.rank(X) is not None and y.ndim <= ctx.rank(X):
            return f"torch.pow({X}, {ctx.lit(v)})"
    out = f"torch.pow({X}, {Y})"
    if xdt is not None and ctx.dtype(Y) != xdt:
        out = f"{out}.to({X}.dtype)"  # ONNX: the result has the base's type
    return out


@register("Mod", (10, 13, 28))
def mod(ctx: Ctx, A: Arg, B: Arg, *, fmod: int = 0):
    if fmod:
        return f"torch.fmod({A}, {B})"
    return f"torch.remainder({A}, {B})"


def _compare(op: str):
    def emit(ctx: Ctx, A: Arg, B: Arg, *, broadcast: int = 0, axis: int | None = None):
        if broadcast and axis is not None:
            B = Arg(_legacy_broadcast(ctx, A, B, broadcast, axis), B.value)
        a, b = _operands(ctx, A, B)
        return f"{a} {op} {b}"

    return emit


register("Equal", (1, 7, 11, 13, 19))(_compare("=="))
register("Greater", (1, 7, 9, 13))(_compare(">"))
register("Less", (1, 7, 9, 13))(_compare("<"))
register("GreaterOrEqual", (12, 16))(_compare(">="))
register("LessOrEqual", (12, 16))(_compare("<="))


def _logical(fn: str):
    def emit(ctx: Ctx, A: Arg, B: Arg, *, broadcast: int = 0, axis: int | None = None):
        if broadcast and axis is not None:
            B = Arg(_legacy_broadcast(ctx, A, B, broadcast, axis), B.value)
        return f"{fn}({A}, {B})"

    return emit


register("And", (1, 7))(_logical("torch.logical_and"))
register("Or", (1, 7))(_logical("torch.logical_or"))
register("Xor", (1, 7))(_logical("torch.logical_xor"))
register("BitwiseAnd", 18)(_logical("torch.bitwise_and"))
register("BitwiseOr", 18)(_logical("torch.bitwise_or"))
register("BitwiseXor", 18)(_logical("torch.bitwise_xor"))


@register("BitShift", (11, 28))
def bitshift(ctx: Ctx, X: Arg, Y: Arg, *, direction: str):
    op = "<<" if direction == "LEFT" else ">>"
    return f"{X} {op} {Y}"


# ---- variadic -------------------------------------------------------------------------------
def _fold(op_fmt: str, single: str = "{x}"):
    def emit(ctx: Ctx, *inputs: Arg, consumed_inputs=None):
        inputs = [x for x in inputs if x is not None]
        if len(inputs) == 1:
            return single.format(x=inputs[0])
        expr = str(inputs[0])
        for x in inputs[1:]:
            expr = op_fmt.format(a=expr, b=x)
        return expr

    return emit


register("Sum", (1, 6, 8, 13))(_fold("{a} + {b}"))
register("Max", (1, 6, 8, 12, 13))(_fold("torch.maximum({a}, {b})"))
register("Min", (1, 6, 8, 12, 13))(_fold("torch.minimum({a}, {b})"))


@register("Mean", (1, 6, 8, 13))
def mean(ctx: Ctx, *inputs: Arg, consumed_inputs=None):
    inputs = [x for x in inputs if x is not None]
    total = " + ".join(str(x) for x in inputs)
    return f"({total}) / {len(inputs)}" if len(inputs) > 1 else str(inputs[0])


# ---- activations with attributes ------------------------------------------------------------
@register("LeakyRelu", (1, 6, 16))
def leaky_relu(ctx: Ctx, X: Arg, *, alpha: float = 0.01, consumed_inputs=None):
    return f"F.leaky_relu({X}, {ctx.lit(alpha, ir.DataType.FLOAT)})"


@register("Elu", (1, 6, 22))
def elu(ctx: Ctx, X: Arg, *, alpha: float = 1.0, consumed_inputs=None):
    return f"F.elu({X}, {ctx.lit(alpha, ir.DataType.FLOAT)})" if alpha != 1.0 else f"F.elu({X})"


@register("Celu", (12, 28))
def celu(ctx: Ctx, X: Arg, *, alpha: float = 1.0):
    return f"F.celu({X}, {ctx.lit(alpha, ir.DataType.FLOAT)})" if alpha != 1.0 else f"F.celu({X})"


@register("Selu", (1, 6, 22))
def selu(ctx: Ctx, X: Arg, *, alpha: float = 1.67326319217681884765625,
         gamma: float = 1.05070102214813232421875, consumed_inputs=None):
    if abs(alpha - 1.6732632423543772) < 1e-6 and abs(gamma - 1.0507009873554805) < 1e-6:
        return f"F.selu({X})"
    a, g = ctx.lit(alpha, ir.DataType.FLOAT), ctx.lit(gamma, ir.DataType.FLOAT)
    return f"{g} * torch.where({X} > 0, {X}, {a} * (torch.exp({X}) - 1))"


@register("ThresholdedRelu", (10, 22))
def thresholded_relu(ctx: Ctx, X: Arg, *, alpha: float = 1.0):
    return f"torch.where({X} > {ctx.lit(alpha, ir.DataType.FLOAT)}, {X}, torch.zeros_like({X}))"


@register("HardSigmoid", (1, 6, 22))
def hard_sigmoid(ctx: Ctx, X: Arg, *, alpha: float = 0.2, beta: float = 0.5, consumed_inputs=None):
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        return f"F.hardsigmoid({X})"
    a, b = ctx.lit(alpha, ir.DataType.FLOAT), ctx.lit(beta, ir.DataType.FLOAT)
    return f"torch.clamp({X} * {a} + {b}, 0, 1)"


@register("Gelu", 20)
def gelu(ctx: Ctx, X: Arg, *, approximate: str = "none"):
    return f"F.gelu({X}, approximate='tanh')" if approximate == "tanh" else f"F.gelu({X})"


@register("Swish", 24)
def swish(ctx: Ctx, X: Arg, *, alpha: float = 1.0):
    if alpha == 1.0:
        return f"F.silu({X})"
    return f"{X} * torch.sigmoid({ctx.lit(alpha, ir.DataType.FLOAT)} * {X})"


@register("PRelu", (1, 6, 7, 9, 16))
def prelu(ctx: Ctx, X: Arg, slope: Arg, *, consumed_inputs=None):
    # the slope broadcasts unidirectionally to X, which torch.where does for any shape
    return f"torch.where({X} >= 0, {X}, {X} * {slope})"


@register("Clip", (1, 6, 11, 12, 13))
def clip(ctx: Ctx, X: Arg, lo: Arg | None = None, hi: Arg | None = None, *,
         consumed_inputs=None, **attrs):
    if ctx.opset < 11:  # bounds are attributes
        lo_s, hi_s = ctx.lit(attrs.get("min")), ctx.lit(attrs.get("max"))
    else:
        lo_s, hi_s = _bound(ctx, lo), _bound(ctx, hi)
    if lo_s == "None" and hi_s == "None":
        return str(X)
    if lo_s in ("0", "0.0") and hi_s in ("6", "6.0"):
        return f"F.relu6({X})"
    if lo_s in ("0", "0.0") and hi_s == "None":
        return f"torch.relu({X})"
    return f"torch.clamp({X}, {lo_s}, {hi_s})"


def _bound(ctx: Ctx, arg: Arg | None) -> str:
    if arg is None:
        return "None"
    c = ctx.const(arg)
    if c is not None and c.size == 1:
        return ctx.lit(c.reshape(()).item(), ctx.dtype(arg))
    return str(arg)


@register("Shrink", 9)
def shrink(ctx: Ctx, X: Arg, *, bias: float = 0.0, lambd: float = 0.5):
    b, l = ctx.lit(bias, ir.DataType.FLOAT), ctx.lit(lambd, ir.DataType.FLOAT)
    return (f"torch.where({X} < -{l}, {X} + {b}, torch.where({X} > {l}, {X} - {b}, "
            f"torch.zeros_like({X})))")


@register("IsInf", (10, 20))
def isinf(ctx: Ctx, X: Arg, *, detect_negative: int = 1, detect_positive: int = 1):
    if detect_negative and detect_positive:
        return f"torch.isinf({X})"
    if detect_positive:
        return f"torch.isposinf({X})"
    if detect_negative:
        return f"torch.isneginf({X})"
    return f"torch.zeros_like({X}, dtype=torch.bool)"
