"""Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv,
QLinearMatMul, ConvInteger, MatMulInteger.

The math is written out with plain float ops (``torch.round`` rounds half to even, like ONNX),
never with torch's quantized tensors.  Integer convolutions and matmuls run in float64, which
holds every int32 accumulator exactly.
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register

DT = ir.DataType
_INT_RANGES = {
    DT.UINT8: (0, 255), DT.INT8: (-128, 127), DT.UINT16: (0, 65535), DT.INT16: (-32768, 32767),
    DT.UINT4: (0, 15), DT.INT4: (-8, 7), DT.UINT2: (0, 3), DT.INT2: (-2, 1),
    DT.INT32: (-2**31, 2**31 - 1),
}
_FLOAT8_MAX = {DT.FLOAT8E4M3FN: 448.0, DT.FLOAT8E4M3FNUZ: 240.0, DT.FLOAT8E5M2: 57344.0,
               DT.FLOAT8E5M2FNUZ: 57344.0}
_FLOAT_LIT = {DT.FLOAT, DT.DOUBLE, DT.FLOAT16}


def _param(ctx: Ctx, arg: Arg | None, x: Arg, axis: int, block_size: int, *,
           literal_dtype=None) -> str | None:
    """A scale / zero point, shaped to broadcast against ``x`` (per tensor, per axis, or
    blocked).  A constant single value prints as a literal when ``literal_dtype`` allows."""
    if arg is None:
        return None
    arr = ctx.const(arg)
    shape = ctx.shape(arg)
    if arr is not None and arr.size == 1:
        dt = ctx.dtype(arg)
        if literal_dtype is not None and dt in literal_dtype:
            v = arr.reshape(()).item()
            return ctx.lit(v, dt)
        return f"{arg}.reshape(())" if arr.ndim else str(arg)
    rank = ctx.rank(x)
    if shape is not None and len(shape) == 0:
        return str(arg)
    if rank is None:
        ctx.fail("per-axis quantization needs the input's rank")
    ax = axis % rank
    if block_size:
        expr = f"{arg}.repeat_interleave({block_size}, dim={ax})"
        xs = ctx.shape(x)
        if (shape is None or xs is None or shape[ax] is None or xs[ax] is None
                or shape[ax] * block_size != xs[ax]):
            expr = f"{expr}.narrow({ax}, 0, {x}.shape[{ax}])"
        return expr
    if shape is not None and len(shape) == 1 and shape[0] == 1:
        return f"{arg}.reshape(())"
    trailing = rank - 1 - ax
    if trailing == 0:
        return str(arg)
    return f"{arg}.reshape(-1{', 1' * trailing})"


def _quant_type(ctx: Ctx, zp: Arg | None, output_dtype: int) -> DT:
    if zp is not None and ctx.dtype(zp) is not None:
        return ctx.dtype(zp)
    if output_dtype:
        return DT(output_dtype)
    out = ctx.out_dtype(0)
    return out if out is not None else DT.UINT8


@register("QuantizeLinear", (10, 13, 19, 21, 23, 24, 25, 28))
def quantize_linear(ctx: Ctx, x: Arg, y_scale: Arg, y_zero_point: Arg | None = None, *,
                    axis: int = 1, saturate: int = 1, block_size: int = 0,
                    output_dtype: int = 0, precision: int = 0):
    qt = _quant_type(ctx, y_zero_point, output_dtype)
    xdt = ctx.dtype(x)
    same = {xdt} if xdt in _FLOAT_LIT and ctx.dtype(y_scale) == xdt and not precision else None
    scale = _param(ctx, y_scale, x, axis, block_size, literal_dtype=same)
    xs = str(x)
    if precision:
        pt = ctx.dtype_src(precision)
        xs = f"{x}.to({pt})"
        scale = f"{scale}.to({pt})"
    elif xdt is not None and xdt.is_integer():
        xs = f"{x}.to({ctx.dtype_src(ctx.dtype(y_scale) or DT.FLOAT)})"
    out = ctx.dtype_src(qt)
    if qt in _FLOAT8_MAX:
        val = f"{xs} / {scale}"
        if saturate:
            m = ctx.lit(_FLOAT8_MAX[qt])
            val = f"torch.clamp({val}, -{m}, {m})"
        return f"({val}).to({out})"
    if qt not in _INT_RANGES:
        ctx.fail(f"quantizing to {qt.name} is not supported")
    lo, hi = _INT_RANGES[qt]
    val = f"torch.round({xs} / {scale})"
    zp = _param(ctx, y_zero_point, x, axis, block_size, literal_dtype=set(_INT_RANGES))
    if zp is not None and zp != "0":
        val = f"{val} + {zp}"
    return f"torch.clamp({val}, {lo}, {hi}).to({out})"


@register("DequantizeLinear", (10, 13, 19, 21, 23, 24, 25, 28))
def dequantize_linear(ctx: Ctx, x: Arg, x_scale: Arg, x_zero_point: Arg | None = None, *,
                      axis: int = 1, block_size: int = 0, output_dtype: int = 0):
    xdt = ctx.dtype(x)
    sdt = ctx.dtype(x_scale) or DT.FLOAT
    val = f"{x}.to(torch.float32)"
    if x_zero_point is not None and not (xdt in _FLOAT8_MAX):
        zp = _param(ctx, x_zero_point, x, axis, block_size, literal_dtype=set(_INT_RANGES))
        if zp != "0":
            val = f"({val} - {zp})"
    lit = {DT.FLOAT} if sdt == DT.FLOAT else None
    scale = _param(ctx, x_scale, x, axis, block_size, literal_dtype=lit)
    val = f"{val} * {scale}"
    out = DT(output_dtype) if output_dtype else sdt
    if out != DT.FLOAT:
        val = f"({val}).to({ctx.dtype_src(out)})"
    return val


@register("DynamicQuantizeLinear", (11,))
def dynamic_quantize_linear(ctx: Ctx, x: Arg):
    return f"{ctx.helper('_dynamic_quantize_linear')}({x})"


# ---- integer matmul / conv ----------------------------------------------------------------
def _shifted(ctx: Ctx, v: Arg, zp: Arg | None, per_row: bool = False, per_channel_rank=None):
    """``v`` as float64 minus its zero point."""
    out = f"{v}.double()"
    if zp is None:
        return out
    arr = ctx.const(zp)
    if arr is not None and arr.size == 1:
        z = int(arr.reshape(()).item())
        return out if z == 0 else f"({out} - {z})"
    zs = ctx.shape(zp)
    if zs is not None and len(zs) == 1 and zs[0] != 1:
        if per_row:
            return f"({out} - {zp}.double().reshape(-1, 1))"
        if per_channel_rank:
            return f"({out} - {zp}.double().reshape(-1{', 1' * (per_channel_rank - 1)}))"
    return f"({out} - {zp}.double())"


def _conv_call(ctx: Ctx, x: str, w: str, X: Arg, W: Arg, bias, auto_pad, dilations, group,
               kernel_shape, pads, strides) -> str:
    wshape = ctx.shape(W)
    rank = ctx.rank(X) or (len(wshape) if wshape else None)
    if rank is None or rank not in (3, 4, 5):
        ctx.fail("integer convolution needs a 3-D, 4-D or 5-D input of known rank")
    nd = rank - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        xs = ctx.shape(X)
        ks = list(kernel_shape or (wshape[2:] if wshape else []))
        if xs is None or any(d is None for d in xs[2:]) or len(ks) != nd:
            ctx.fail("auto_pad SAME needs known spatial sizes")
        pads_b, pads_e = [], []
        for i in range(nd):
            out = -(-xs[2 + i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (ks[i] - 1) * dilations[i] + 1 - xs[2 + i])
            small, big = total // 2, total - total // 2
            pads_b.append(small if auto_pad == "SAME_UPPER" else big)
            pads_e.append(big if auto_pad == "SAME_UPPER" else small)
        pads = pads_b + pads_e
    elif auto_pad == "VALID" or not pads:
        pads = [0] * (2 * nd)
    pads = list(pads)
    if pads[:nd] == pads[nd:]:
        padding = pads[:nd]
    else:
        torch_pads = []
        for i in reversed(range(nd)):
            torch_pads += [pads[i], pads[nd + i]]
        x = f"F.pad({x}, {ctx.lit(torch_pads)})"
        padding = [0] * nd
    b = f", {bias}" if bias else ""
    return (f"F.conv{nd}d({x}, {w}{b}, stride={ctx.lit(strides)}, padding={ctx.lit(padding)}, "
            f"dilation={ctx.lit(dilations)}, groups={group})")


def _requant(ctx: Ctx, acc: str, scale: str, y_zp: Arg | None, qt: DT) -> str:
    lo, hi = _INT_RANGES.get(qt, (0, 255))
    val = f"{acc} * {scale}"
    if y_zp is not None:
        arr = ctx.const(y_zp)
        if arr is not None and arr.size == 1:
            z = int(arr.reshape(()).item())
            if z:
                val = f"{val} + {z}"
        else:
            val = f"{val} + {y_zp}.double()"
    return f"torch.clamp(torch.round({val}), {lo}, {hi}).to({ctx.dtype_src(qt)})"


@register("MatMulInteger", (10,))
def matmul_integer(ctx: Ctx, A: Arg, B: Arg, a_zero_point: Arg | None = None,
                   b_zero_point: Arg | None = None):
    a = _shifted(ctx, A, a_zero_point, per_row=True)
    b = _shifted(ctx, B, b_zero_point)
    return f"torch.matmul({a}, {b}).to(torch.int32)"


@register("ConvInteger", (10,))
def conv_integer(ctx: Ctx, x: Arg, w: Arg, x_zero_point: Arg | None = None,
                 w_zero_point: Arg | None = None, *, auto_pad: str = "NOTSET", dilations=None,
                 group: int = 1, kernel_shape=None, pads=None, strides=None):
    xs = _shifted(ctx, x, x_zero_point)
    ws = _shifted(ctx, w, w_zero_point, per_channel_rank=ctx.rank(w))
    conv = _conv_call(ctx, xs, ws, x, w, None, auto_pad, dilations, group, kernel_shape, pads,
                      strides)
    return f"{conv}.to(torch.int32)"


def _scale_product(ctx: Ctx, a_s: Arg, b_s: Arg, y_s: Arg, rank_b=None) -> str:
    bshape = ctx.shape(b_s)
    b = str(b_s)
    if rank_b and bshape is not None and len(bshape) == 1 and bshape[0] != 1:
        b = f"{b_s}.reshape(-1{', 1' * (rank_b - 1)})"
    return f"({a_s} * {b} / {y_s}).double()"


@register("QLinearMatMul", (10, 21))
def qlinear_matmul(ctx: Ctx, a: Arg, a_scale: Arg, a_zero_point: Arg, b: Arg, b_scale: Arg,
                   b_zero_point: Arg, y_scale: Arg, y_zero_point: Arg):
    qt = ctx.dtype(y_zero_point) or ctx.out_dtype(0) or DT.UINT8
    if qt not in _INT_RANGES:
        ctx.fail(f"QLinearMatMul with {qt.name} output is not supported")
    acc = ctx.tmp("acc")
    ctx.line(f"{acc} = torch.matmul({_shifted(ctx, a, a_zero_point, per_row=True)}, "
             f"{_shifted(ctx, b, b_zero_point)})")
    scale = _scale_product(ctx, a_scale, b_scale, y_scale)
    return _requant(ctx, acc, scale, y_zero_point, qt)


@register("QLinearConv", (10,))
def qlinear_conv(ctx: Ctx, x: Arg, x_scale: Arg, x_zero_point: Arg, w: Arg, w_scale: Arg,
                 w_zero_point: Arg, y_scale: Arg, y_zero_point: Arg | None = None,
                 B: Arg | None = None, *, auto_pad: str = "NOTSET", dilations=None,
                 group: int = 1, kernel_shape=None, pads=None, strides=None):
    qt = (ctx.dtype(y_zero_point) if y_zero_point is not None else ctx.dtype(x)) or DT.UINT8
    rank = ctx.rank(x) or ctx.rank(w)
    xs = _shifted(ctx, x, x_zero_point)
    ws = _shifted(ctx, w, w_zero_point, per_channel_rank=ctx.rank(w))
    bias = f"{B}.double()" if B is not None else None
    acc = ctx.tmp("acc")
    ctx.line(f"{acc} = " + _conv_call(ctx, xs, ws, x, w, bias, auto_pad, dilations, group,
                                      kernel_shape, pads, strides))
    scale = _scale_product(ctx, x_scale, w_scale, y_scale, rank_b=(rank - 1) if rank else None)
    return _requant(ctx, acc, scale, y_zero_point, qt)
