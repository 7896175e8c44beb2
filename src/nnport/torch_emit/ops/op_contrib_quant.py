"""onnxruntime contrib quantized ops (domain ``com.microsoft``): MatMulNBits, GatherBlockQuantized,
DynamicQuantizeMatMul, MatMulIntegerToFloat, QGemm, DynamicQuantizeLSTM and the QLinear family
(Add, Mul, Concat, Sigmoid, LeakyRelu, GlobalAveragePool, AveragePool, Softmax).

The math is written out with plain float ops, as in op_quant.py (``torch.round`` rounds half to
even like onnxruntime's ``nearbyint``); integer matmuls run in float64, which holds every int32
accumulator exactly.  onnxruntime's own kernels use lookup tables and fused float multiplies,
so a requantized output can land one quantization step away where a value sits on a rounding
boundary.

Block-quantized weights (MatMulNBits, GatherBlockQuantized) stay packed in the generated
module's buffers, as small as in the ONNX file, and are dequantized in forward.
DynamicQuantizeLSTM keeps its int8 weights and, like onnxruntime, quantizes its GEMM inputs
on the fly (the ``_dynamic_quantize_lstm`` helper).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx
from .op_contrib_basic import _used, embed_layer_norm, register_ms
from .op_pool import average_pool
from .op_quant import _INT_RANGES

DT = ir.DataType
_F32 = DT.FLOAT


# ---- small pieces -------------------------------------------------------------------------------
def _scalar(ctx: Ctx, arg: Arg | None, default=0):
    """A per-tensor scale / zero point: its value (a Python number) when constant, else None."""
    if arg is None:
        return default
    arr = ctx.const(arg)
    if arr is not None and arr.size == 1:
        v = arr.reshape(()).item()
        return float(np.float32(v)) if arr.dtype.kind == "f" else int(v)
    return None


def _num(ctx: Ctx, arg: Arg | None, default=0) -> str:
    """A scale / zero point as code: a literal when constant, else the tensor as float."""
    v = _scalar(ctx, arg, default)
    if v is not None:
        return ctx.lit(v, _F32) if isinstance(v, float) else str(v)
    return f"{arg}.float()"


def _centered(ctx: Ctx, x: Arg, zp: Arg | None) -> str:
    """``x`` as float32 minus its zero point."""
    z = _num(ctx, zp)
    return f"{x}.float()" if z == "0" else f"({x}.float() - {z})"


def _qtype(ctx: Ctx, zp: Arg | None, x: Arg | None = None) -> DT:
    dt = ctx.dtype(zp) if zp is not None else None
    if dt is None and x is not None:
        dt = ctx.dtype(x)
    return dt or ctx.out_dtype(0) or DT.UINT8


def _quantize(ctx: Ctx, val: str, zp: Arg | None, qt: DT) -> str:
    """round(val) + zero point, saturated to the type's range."""
    if qt not in _INT_RANGES:
        ctx.fail(f"quantized type {qt.name} is not supported")
    lo, hi = _INT_RANGES[qt]
    z = _num(ctx, zp)
    r = f"torch.round({val})" + ("" if z == "0" else f" + {z}")
    return f"torch.clamp({r}, {lo}, {hi}).to({ctx.dtype_src(qt)})"


def _ratio(ctx: Ctx, num: list[Arg], den: list[Arg]) -> str:
    """prod(num) / prod(den) of scales, folded to one float32 literal when constant (in the
    order onnxruntime computes it)."""
    vals = [_scalar(ctx, a, None) for a in num + den]
    if all(v is not None for v in vals):
        r = np.float32(1.0)
        for v in vals[: len(num)]:
            r = np.float32(r * np.float32(v))
        for v in vals[len(num):]:
            r = np.float32(r / np.float32(v))
        return ctx.lit(float(r), _F32)
    top = " * ".join(_num(ctx, a) for a in num)
    bot = " * ".join(_num(ctx, a) for a in den)
    return f"({top} / ({bot}))" if den else f"({top})"


# ---- MatMulNBits, GatherBlockQuantized -----------------------------------------------------------
@register_ms("MatMulNBits")
def matmul_nbits(ctx: Ctx, A: Arg, B: Arg, scales: Arg, zero_points: Arg | None = None,
                 g_idx: Arg | None = None, bias: Arg | None = None, *, K: int, N: int,
                 block_size: int, bits: int = 4, accuracy_level: int = 0,
                 weight_prepacked: int = 0):
    if weight_prepacked:
        ctx.fail("weights prepacked for an execution provider are not supported")
    if g_idx is not None:
        ctx.fail("g_idx (act-order) is not supported")
    if bits not in (2, 4, 8):
        ctx.fail(f"{bits}-bit weights are not supported")
    bs = ctx.shape(B)
    if bs is not None and 0 in bs:
        ctx.fail("an omitted (empty) packed weight is not supported")
    fn = ctx.helper("_dequantize_nbits")
    w = ctx.tmp("weight")
    zp = str(zero_points) if zero_points is not None else "None"
    ctx.line(f"# {bits}-bit weights in blocks of {block_size}: kept packed, dequantized here")
    ctx.line(f"{w} = {fn}({B}, {scales}, {zp}, bits={bits}, block_size={block_size}, k={K})")
    b = f", {bias}" if bias is not None else ""
    a = str(A)
    if accuracy_level == 4:
        # onnxruntime's CPU kernel computes in int8: A is rounded per block the same way
        a = f"{ctx.helper('_int8_blocks')}({A}, {block_size})"
    return f"F.linear({a}, {w}{b})"


_INT4 = {DT.INT4: np.int8, DT.UINT4: np.uint8}


@register_ms("GatherBlockQuantized")
def gather_block_quantized(ctx: Ctx, data: Arg, indices: Arg, scales: Arg,
                           zero_points: Arg | None = None, *, bits: int = 4,
                           block_size: int = 128, gather_axis: int = 0, quantize_axis: int = 1):
    rank = ctx.rank(data)
    if rank is None:
        ctx.fail("GatherBlockQuantized needs the data's rank")
    dt = ctx.dtype(data)
    ga, qa = gather_axis % rank, quantize_axis % rank
    if dt in _INT4:
        # torch has no 4-bit type: the constant is stored one value per byte
        arrs = []
        for a in (data, zero_points):
            if a is None:
                arrs.append("None")
                continue
            arr = ctx.const(a)
            if arr is None:
                ctx.fail("4-bit data must be a constant")
            arrs.append(ctx.weight(arr.astype(_INT4[dt]), a.value.name or "data",
                                   parameter=False))
        d, z = arrs
        packed, default_zp = False, 0
    elif dt == DT.UINT8:
        d, z = str(data), str(zero_points) if zero_points is not None else "None"
        packed, default_zp = bits < 8, 1 << (bits - 1)
    else:
        ctx.fail(f"{dt.name if dt else 'unknown'} data is not supported")
    fn = ctx.helper("_gather_block_quantized")
    return (f"{fn}({d}, {indices}, {scales}, {z}, bits={bits}, block_size={block_size}, "
            f"gather_axis={ga}, quantize_axis={qa}, default_zp={default_zp}, "
            f"packed={packed})")


# ---- integer matmuls with float output --------------------------------------------------------------
def _shift_b(ctx: Ctx, B: str, zp: Arg | None, per_row: bool = False) -> str:
    """B (int) as float64 minus its zero point (per tensor, or per column of the (K, N)
    matrix; ``per_row`` for a transposed (N, K) one)."""
    if zp is None:
        return f"{B}.double()"
    v = _scalar(ctx, zp, None)
    if v is not None:
        return f"{B}.double()" if v == 0 else f"({B}.double() - {v})"
    z = f"{zp}.double().reshape(-1, 1)" if per_row else f"{zp}.double()"
    return f"({B}.double() - {z})"


@register_ms("DynamicQuantizeMatMul")
def dynamic_quantize_matmul(ctx: Ctx, A: Arg, B: Arg, b_scale: Arg,
                            b_zero_point: Arg | None = None, bias: Arg | None = None):
    # A is quantized to uint8 on the fly (DynamicQuantizeLinear), as onnxruntime does
    fn = ctx.helper("_dynamic_quantize_linear")
    aq, s, z = ctx.tmp("a_q"), ctx.tmp("a_scale"), ctx.tmp("a_zero_point")
    ctx.line(f"{aq}, {s}, {z} = {fn}({A})")
    acc = f"torch.matmul({aq}.double() - {z}.double(), {_shift_b(ctx, B, b_zero_point)})"
    y = f"{acc}.float() * ({s} * {b_scale})"
    return f"{y} + {bias}" if bias is not None else y


@register_ms("MatMulIntegerToFloat")
def matmul_integer_to_float(ctx: Ctx, A: Arg, B: Arg, a_scale: Arg, b_scale: Arg,
                            a_zero_point: Arg | None = None, b_zero_point: Arg | None = None,
                            bias: Arg | None = None):
    a = f"{A}.double()"
    if a_zero_point is not None:
        v = _scalar(ctx, a_zero_point, None)
        a = a if v == 0 else (f"({a} - {v})" if v is not None
                              else f"({a} - {a_zero_point}.double())")
    acc = f"torch.matmul({a}, {_shift_b(ctx, B, b_zero_point)})"
    y = f"{acc}.float() * ({a_scale} * {b_scale})"
    return f"{y} + {bias}" if bias is not None else y


@register_ms("QGemm")
def qgemm(ctx: Ctx, A: Arg, a_scale: Arg, a_zero_point: Arg, B: Arg, b_scale: Arg,
          b_zero_point: Arg, C: Arg | None = None, y_scale: Arg | None = None,
          y_zero_point: Arg | None = None, *, alpha: float = 1.0, transA: int = 0,
          transB: int = 0):
    a = _shift_b(ctx, A, a_zero_point)
    if transA:
        a = f"{a}.t()"
    b = _shift_b(ctx, B, b_zero_point, per_row=bool(transB))
    if transB:
        b = f"{b}.t()"
    acc = ctx.tmp("acc")
    ctx.line(f"{acc} = torch.matmul({a}, {b})" + (f" + {C}.double()" if C is not None else ""))
    scale = _ratio(ctx, [a_scale], [])
    bs = ctx.shape(b_scale)
    bsc = _num(ctx, b_scale) if not (bs and len(bs) == 1 and bs[0] != 1) else str(b_scale)
    factor = f"{scale} * {bsc}"
    if alpha != 1.0:
        factor = f"{ctx.lit(float(alpha), _F32)} * {factor}"
    y = f"{acc}.float() * ({factor})"
    if y_scale is None:
        return y
    return _quantize(ctx, f"{y} / {_num(ctx, y_scale)}", y_zero_point,
                     _qtype(ctx, y_zero_point, A))


# ---- QLinear elementwise -----------------------------------------------------------------------------
@register_ms("QLinearAdd")
def qlinear_add(ctx: Ctx, A: Arg, A_scale: Arg, A_zero_point: Arg | None, B: Arg, B_scale: Arg,
                B_zero_point: Arg | None, C_scale: Arg, C_zero_point: Arg | None = None):
    a = f"{_centered(ctx, A, A_zero_point)} * {_ratio(ctx, [A_scale], [C_scale])}"
    b = f"{_centered(ctx, B, B_zero_point)} * {_ratio(ctx, [B_scale], [C_scale])}"
    return _quantize(ctx, f"{a} + {b}", C_zero_point, _qtype(ctx, C_zero_point, A))


@register_ms("QLinearMul")
def qlinear_mul(ctx: Ctx, A: Arg, A_scale: Arg, A_zero_point: Arg | None, B: Arg, B_scale: Arg,
                B_zero_point: Arg | None, C_scale: Arg, C_zero_point: Arg | None = None):
    r = _ratio(ctx, [A_scale, B_scale], [C_scale])
    val = f"{_centered(ctx, A, A_zero_point)} * {_centered(ctx, B, B_zero_point)} * {r}"
    return _quantize(ctx, val, C_zero_point, _qtype(ctx, C_zero_point, A))


def _unary(ctx: Ctx, X: Arg, X_scale: Arg, X_zero_point: Arg | None, Y_scale: Arg,
           Y_zero_point: Arg | None, fn) -> str:
    x = f"{_centered(ctx, X, X_zero_point)} * {_num(ctx, X_scale)}"
    return _quantize(ctx, f"{fn(x)} / {_num(ctx, Y_scale)}", Y_zero_point,
                     _qtype(ctx, Y_zero_point, X))


@register_ms("QLinearSigmoid")
def qlinear_sigmoid(ctx: Ctx, X: Arg, X_scale: Arg, X_zero_point: Arg | None, Y_scale: Arg,
                    Y_zero_point: Arg | None = None):
    return _unary(ctx, X, X_scale, X_zero_point, Y_scale, Y_zero_point,
                  lambda x: f"torch.sigmoid({x})")


@register_ms("QLinearLeakyRelu")
def qlinear_leaky_relu(ctx: Ctx, X: Arg, X_scale: Arg, X_zero_point: Arg | None, Y_scale: Arg,
                       Y_zero_point: Arg | None = None, *, alpha: float = 0.01):
    a = ctx.lit(float(alpha), _F32)
    return _unary(ctx, X, X_scale, X_zero_point, Y_scale, Y_zero_point,
                  lambda x: f"F.leaky_relu({x}, {a})")


@register_ms("QLinearConcat")
def qlinear_concat(ctx: Ctx, Y_scale: Arg, Y_zero_point: Arg, *inputs: Arg, axis: int):
    if len(inputs) % 3:
        ctx.fail("QLinearConcat takes (tensor, scale, zero point) triples")
    qt = _qtype(ctx, Y_zero_point)
    ys, yz = _scalar(ctx, Y_scale, None), _scalar(ctx, Y_zero_point, None)
    parts = []
    for i in range(0, len(inputs), 3):
        x, s, z = inputs[i:i + 3]
        if ys is not None and _scalar(ctx, s, None) == ys and _scalar(ctx, z, None) == yz:
            parts.append(str(x))  # already in the output's quantization
        else:
            val = f"{_centered(ctx, x, z)} * {_num(ctx, s)} / {_num(ctx, Y_scale)}"
            parts.append(_quantize(ctx, val, Y_zero_point, qt))
    return f"torch.cat([{', '.join(parts)}], dim={axis})"


@register_ms("QLinearSoftmax")
def qlinear_softmax(ctx: Ctx, X: Arg, X_scale: Arg, x_zero_point: Arg | None, y_scale: Arg,
                    y_zero_point: Arg | None = None, *, axis: int = -1, opset: int = 13):
    x = f"{_centered(ctx, X, x_zero_point)} * {_num(ctx, X_scale)}"
    rank = ctx.rank(X)
    if opset >= 13 or axis == -1 or (rank is not None and axis % rank == rank - 1):
        p = f"torch.softmax({x}, dim={axis})"
    else:  # opset < 13: the dims from axis on are one flattened dim
        p = f"torch.softmax(({x}).flatten({axis}), dim=-1).reshape({X}.shape)"
    return _quantize(ctx, f"{p} / {_num(ctx, y_scale)}", y_zero_point,
                     _qtype(ctx, y_zero_point, X))


@register_ms("QLinearGlobalAveragePool")
def qlinear_global_average_pool(ctx: Ctx, X: Arg, x_scale: Arg, x_zero_point: Arg | None,
                                y_scale: Arg, y_zero_point: Arg | None = None, *,
                                channels_last: int = 0):
    rank = ctx.rank(X)
    if rank is not None:
        dims = ctx.lit(list(range(1, rank - 1)) if channels_last else list(range(2, rank)))
    else:  # after another contrib node, whose output shape onnx cannot infer
        dims = (f"list(range(1, {X}.dim() - 1))" if channels_last
                else f"list(range(2, {X}.dim()))")
    x = f"{_centered(ctx, X, x_zero_point)}.mean(dim={dims}, keepdim=True)"
    val = f"{x} * {_ratio(ctx, [x_scale], [y_scale])}"
    return _quantize(ctx, val, y_zero_point, _qtype(ctx, y_zero_point, X))


@register_ms("QLinearAveragePool")
def qlinear_average_pool(ctx: Ctx, X: Arg, x_scale: Arg, x_zero_point: Arg | None, y_scale: Arg,
                         y_zero_point: Arg | None = None, *, auto_pad: str = "NOTSET",
                         ceil_mode: int = 0, channels_last: int = 0,
                         count_include_pad: int = 0, kernel_shape=None, pads=None,
                         strides=None):
    rank = ctx.rank(X)
    if rank is None and kernel_shape:
        rank = len(kernel_shape) + 2
    if rank is None:
        ctx.fail("QLinearAveragePool needs the input's rank or kernel_shape")
    xf = ctx.tmp("x_float")
    x = f"{_centered(ctx, X, x_zero_point)} * {_num(ctx, x_scale)}"
    if channels_last:
        x = f"({x}).movedim(-1, 1)"
    ctx.line(f"{xf} = {x}")
    value = X.value
    if X.value is not None and X.value.shape is not None:
        dims = list(X.value.shape.dims)
        if channels_last:
            dims = [dims[0], dims[-1], *dims[1:-1]]
        value = ir.Value(name=X.value.name, shape=ir.Shape(dims),
                         type=ir.TensorType(_F32))
    else:  # the float input's rank, for the pooling emitter
        value = ir.Value(name=X.value.name if X.value is not None else "x",
                         shape=ir.Shape([None] * rank), type=ir.TensorType(_F32))
    pooled = average_pool(ctx, Arg(xf, value), auto_pad=auto_pad, ceil_mode=ceil_mode,
                          count_include_pad=count_include_pad, kernel_shape=kernel_shape,
                          pads=pads, strides=strides)
    if channels_last:
        pooled = f"({pooled}).movedim(1, -1)"
    return _quantize(ctx, f"{pooled} / {_num(ctx, y_scale)}", y_zero_point,
                     _qtype(ctx, y_zero_point, X))


# ---- DynamicQuantizeLSTM ---------------------------------------------------------------------------
@register_ms("DynamicQuantizeLSTM")
def dynamic_quantize_lstm(ctx: Ctx, X: Arg, W: Arg, R: Arg, B: Arg | None = None,
                          sequence_lens: Arg | None = None, initial_h: Arg | None = None,
                          initial_c: Arg | None = None, P: Arg | None = None,
                          W_scale: Arg = None, W_zero_point: Arg = None, R_scale: Arg = None,
                          R_zero_point: Arg = None, *, activation_alpha=None,
                          activation_beta=None, activations=None, clip=None,
                          direction: str = "forward", hidden_size=None, input_forget: int = 0):
    if activations and [a.lower() for a in activations] != ["sigmoid", "tanh", "tanh"] * (
            len(activations) // 3):
        ctx.fail(f"activations {activations} are not supported")
    if clip is not None:
        ctx.fail("clip is not supported")
    if direction not in ("forward", "reverse", "bidirectional"):
        ctx.fail(f"unknown direction {direction!r}")
    hidden = hidden_size
    rs = ctx.shape(R)
    if not hidden and rs and rs[1] is not None:
        hidden = rs[1]
    if not hidden:
        ctx.fail("hidden_size is unknown")
    fn = ctx.helper("_dynamic_quantize_lstm")

    def per_dir(a: Arg) -> str:
        s = ctx.shape(a)  # (D,) per tensor -> (D, 1) to broadcast over the gate columns
        return f"{a}.reshape(-1, 1)" if s is not None and len(s) == 1 else str(a)

    opt = [str(a) if a is not None else "None" for a in (B, sequence_lens, initial_h,
                                                          initial_c, P)]
    args = [str(X), str(W), per_dir(W_scale), per_dir(W_zero_point), str(R), per_dir(R_scale),
            per_dir(R_zero_point), *opt, f"hidden={hidden}"]
    if direction != "forward":
        args.append(f"direction={direction!r}")
    if input_forget:
        args.append("input_forget=True")
    if not _used(ctx, 0):
        args.append("output_sequence=False")
    args.append("threads=0")
    # Y is (T, D, B, H) as ONNX LSTM's.  Each sequence's h is quantized on its own, as
    # onnxruntime does when it has a thread per sequence (threads=N: its rows split N ways)
    return f"{fn}({', '.join(args)})"


# ---- QEmbedLayerNormalization ------------------------------------------------------------------------
def _dequantized_const(ctx: Ctx, q: Arg | None, scale: Arg | None, zp: Arg | None,
                       what: str) -> Arg | None:
    """A quantized constant table as a float32 constant, (q - zero point) * scale."""
    if q is None:
        return None
    arrs = [ctx.const(a) if a is not None else np.zeros((), np.float32)
            for a in (q, scale, zp)]
    if any(a is None for a in arrs):
        ctx.fail(f"{what} and its scale and zero point must be constants")
    w, s, z = arrs
    f = ((w.astype(np.float32) - z.astype(np.float32)) * s.astype(np.float32)).astype(
        np.float32)
    name = (q.value.name or what).removesuffix("_quantized")
    value = ir.Value(name=name, shape=ir.Shape(f.shape), type=ir.TensorType(_F32),
                     const_value=ir.tensor(f, name=name))
    return Arg(ctx.name_of(value), value)


@register_ms("QEmbedLayerNormalization")
def qembed_layer_norm(ctx: Ctx, input_ids: Arg, segment_ids: Arg | None,
                      word_embedding_quant: Arg, position_embedding_quant: Arg,
                      segment_embedding: Arg | None, gamma_quant: Arg, beta_quant: Arg,
                      mask: Arg | None, word_embedding_scale: Arg,
                      position_embedding_scale: Arg, segment_embedding_scale: Arg | None,
                      gamma_scale: Arg, beta_scale: Arg, word_embedding_zero_point: Arg,
                      position_embedding_zero_point: Arg,
                      segment_embedding_zero_point: Arg | None, gamma_zero_point: Arg,
                      beta_zero_point: Arg, *, epsilon: float = 1e-12):
    # the uint8 tables are dequantized once, at conversion: an EmbedLayerNormalization
    d = _dequantized_const
    return embed_layer_norm(
        ctx, input_ids, segment_ids,
        d(ctx, word_embedding_quant, word_embedding_scale, word_embedding_zero_point, "word"),
        d(ctx, position_embedding_quant, position_embedding_scale,
          position_embedding_zero_point, "position"),
        d(ctx, segment_embedding, segment_embedding_scale, segment_embedding_zero_point,
          "segment"),
        d(ctx, gamma_quant, gamma_scale, gamma_zero_point, "gamma"),
        d(ctx, beta_quant, beta_scale, beta_zero_point, "beta"), mask, epsilon=epsilon)
