"""QDQ models (onnxruntime's ``quantize_static``, QuantizeLinear/DequantizeLinear around
Conv/Gemm/MatMul) -> ncnn int8 layers, or a float32 path where the int8 form is not possible.

ncnn's int8 layers (src/layer/convolution.cpp, convolutiondepthwise.cpp, innerproduct.cpp):
param 8=int8_scale_term (1: per-output-channel weight scales; ConvolutionDepthWise: one per
group); after the weight (stored with the int8 tag 0x000D4B38, one byte a value, padded to 4)
and the bias come ``weight_data_int8_scales`` (num_output floats; ``group`` for the depthwise
layer) and ``bottom_blob_int8_scales`` (one float), both raw.  The layer quantizes its float
input itself, ``q = clamp(round(x * bottom_scale), -127, 127)``, sums int8 products in int32
and writes ``float(sum) / (bottom_scale * weight_scale[p]) + bias[p]``.  ncnn's scales are
multipliers (int = float * scale), the reciprocals of ONNX's (float = int * scale), and ncnn's
int8 is symmetric: both zero points must be 0.

A layer takes the int8 form when
- its weight is ``DequantizeLinear(int8 constant, scale, zero point 0)``, per tensor or per
  output channel (for a grouped convolution: one scale per group),
- its input is ``DequantizeLinear(QuantizeLinear(x))`` with one scale, zero point 0, int8,
- and it is a 2-D Convolution / ConvolutionDepthWise or an InnerProduct (Gemm, MatMul by a
  constant on at most 2-D rows) without alpha.
The layer then reads ``x`` (float) and quantizes it as onnxruntime's QuantizeLinear does, up to
ties and the -128 level (ncnn saturates at -127).

Every other QuantizeLinear -> DequantizeLinear pair on an activation is fake quantization of
a float tensor, computed in float exactly as ONNX defines it (divide, round to nearest even,
clamp, multiply: 4 elementwise layers, only where a float layer reads it; none before a ReLU
or Clip that is quantized again at the same scale, where the rounding is exactly the next
pair's), and the quantized layers that cannot take the int8 form run in float32 with the
dequantized constant weights.  Simply dropping the pairs is not equivalent: QuantizeLinear also
saturates at the calibrated range (a small uint8 CNN then missed onnxruntime by 56 steps of its
output, max_rel 0.26).  Which layers took which path, and why, is recorded in
``ctx.quant_log`` and reported as a conversion note.
"""
from __future__ import annotations

import numpy as np

from ..registry import register

# 13: axis; 19: float8 types (refused); 21: block_size (refused on activations and int8
# weights), int4, QuantizeLinear's output_dtype; 23: QuantizeLinear's precision (the division
# is done in float32 here), DequantizeLinear's output_dtype; later: types
_VERSIONS = (10, 13, 19, 21, 23, 24, 25, 28)


def _const(ctx, node, i):
    return ctx.const(node.inputs[i]) if len(node.inputs) > i and node.inputs[i] is not None \
        and node.inputs[i].name else None


def _qparams(ctx, node):
    """(scale array, zero point array or None, quantized dtype name or None, axis,
    block_size) of a QuantizeLinear/DequantizeLinear."""
    from .common import attrs_of

    a = attrs_of(node)
    scale = _const(ctx, node, 1)
    zp = _const(ctx, node, 2)
    if node.op_type == "DequantizeLinear" and ctx.const(node.inputs[0]) is not None:
        qdt = str(np.asarray(ctx.const(node.inputs[0])).dtype)
    elif zp is not None:
        qdt = str(np.asarray(zp).dtype)
    elif node.op_type == "DequantizeLinear":
        src = node.inputs[0].producer()
        qdt = _qparams(ctx, src)[2] if src is not None and src.op_type == "QuantizeLinear" \
            else None
    else:  # QuantizeLinear without a zero point: output_dtype (opset 21), or uint8
        import onnx_ir as ir

        to = int(a.get("output_dtype", 0) or 0)
        qdt = ir.DataType(to).name.lower() if to else "uint8"
    return (None if scale is None else np.asarray(scale, np.float64), zp, qdt,
            int(a.get("axis", 1)), int(a.get("block_size", 0) or 0))


def _zero(zp) -> bool:
    return zp is None or not np.any(np.asarray(zp).astype(np.int64))


# ---- QuantizeLinear / DequantizeLinear on activations: fake quantization ----------------------
def structure_problem(node, graph_outputs: set, consumers) -> str | None:
    """Why a QuantizeLinear/DequantizeLinear on activations has no ncnn form, from the graph's
    structure alone (pre-flight and emitter share it); None when it has one.
    ``consumers(value)``: the nodes that read a value."""
    if node.op_type == "QuantizeLinear":
        q = node.outputs[0]
        if q.name in graph_outputs:
            return "its quantized (integer) output is a graph output; ncnn's outputs are float"
        for c in consumers(q):
            if c.op_type != "DequantizeLinear" or c.inputs[0] is not q:
                return (f"its quantized tensor is read by {c.op_type} {c.name!r}; ncnn reads a "
                        "QuantizeLinear output only through a DequantizeLinear")
        return None
    src = node.inputs[0].producer()
    if src is None or src.op_type != "QuantizeLinear":
        return ("it dequantizes an integer tensor that no QuantizeLinear in the graph produced; "
                "ncnn's blobs are float, so only QuantizeLinear -> DequantizeLinear pairs (fake "
                "quantization) and constant weights are converted")
    return None


@register("QuantizeLinear", _VERSIONS)
def quantize_linear(ctx, node):
    """The quantized tensor is carried as its float source; only DequantizeLinear may read it."""
    x, q = node.inputs[0], node.outputs[0]
    why = structure_problem(node, ctx.graph_outputs, lambda v: ctx.consumers.get(v.name, []))
    if why:
        ctx.fail(why)
    ctx.alias(q, ctx.blob(x), ctx.drop(x))


@register("DequantizeLinear", _VERSIONS)
def dequantize_linear(ctx, node):
    """DequantizeLinear(QuantizeLinear(x)) with the same scale and zero point: fake
    quantization of the float ``x``.  Emitted only when a float layer reads it
    (``emit_fake_quant``); an int8 layer reads ``x`` itself and quantizes it."""
    q, y = node.inputs[0], node.outputs[0]
    why = structure_problem(node, ctx.graph_outputs, lambda v: ctx.consumers.get(v.name, []))
    if why:
        ctx.fail(why)
    src = q.producer()
    s1, z1, _, a1, b1 = _qparams(ctx, src)
    s2, z2, _, a2, b2 = _qparams(ctx, node)
    if s1 is None or s2 is None or s1.shape != s2.shape or not np.array_equal(s1, s2) or \
            _zp_array(z1).tolist() != _zp_array(z2).tolist() or \
            (s1.size > 1 and a1 != a2) or b1 != b2:
        ctx.fail(f"its scale or zero point differs from QuantizeLinear {src.name!r}'s "
                 "(a requantization); only matching QuantizeLinear -> DequantizeLinear pairs "
                 "are converted to ncnn")
    if b1:
        ctx.fail("block-quantized activations are not mapped to ncnn")
    if np.unique(_zp_array(z1)).size > 1:
        ctx.fail("a zero point per channel on an activation is not mapped to ncnn")
    ctx.fake_quant[y.name] = node
    ctx.drop_of[y.name] = ctx.drop(src.inputs[0])


def float_source(ctx, v):
    """The float tensor that ``v`` = DequantizeLinear(QuantizeLinear(x)) fake-quantizes, or None."""
    dq = v.producer()
    if v.name not in ctx.fake_quant or dq is None:
        return None
    return dq.inputs[0].producer().inputs[0]


_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
          "uint16": (0, 65535), "int4": (-8, 7), "uint4": (0, 15)}


def _same_quant(ctx, a, b) -> bool:
    sa, za, ta, xa, ba = _qparams(ctx, a)
    sb, zb, tb, xb, bb = _qparams(ctx, b)
    return sa is not None and sb is not None and sa.shape == sb.shape and \
        np.array_equal(sa, sb) and _zp_array(za).tolist() == _zp_array(zb).tolist() and \
        ta == tb and (sa.size == 1 or xa == xb) and not ba and not bb


def _requantized_after_activation(ctx, qn, y) -> bool:
    """Whether fake quantization ``y`` = fq(x) is read only by a ReLU or a Clip by constants
    whose output is read only by QuantizeLinear with the same scale, zero point and type, as
    onnxruntime writes ``Conv -> Q -> DQ -> Relu -> Q -> DQ``.  Then fq(act(fq(x))) equals
    fq(act(x)) exactly (act is monotone and maps the grid's clamp range into itself; a clip
    bound off the grid rounds the same way either way), so ``y`` is ``x`` and the activation
    can fuse into the layer before it."""
    cons = ctx.consumers.get(y.name, [])
    if len(cons) != 1 or y.name in ctx.graph_outputs:
        return False
    act = cons[0]
    if act.op_type == "Clip":
        if any(ctx.const(v) is None for v in act.inputs[1:] if v is not None and v.name):
            return False
    elif act.op_type != "Relu":
        return False
    out = act.outputs[0]
    after = ctx.consumers.get(out.name, [])
    return bool(after) and out.name not in ctx.graph_outputs and all(
        c.op_type == "QuantizeLinear" and c.inputs[0] is out and _same_quant(ctx, c, qn)
        for c in after)


def emit_fake_quant(ctx, dq, y):
    """y = (clamp(round(x / scale) + zp, qmin, qmax) - zp) * scale, as QuantizeLinear then
    DequantizeLinear compute it, in float: BinaryOp 3=div, UnaryOp 0=op_type 18=round (to
    nearest even, as QuantizeLinear), Clip 0=min 1=max (qmin - zp, qmax - zp), BinaryOp 2=mul;
    a per-axis scale is a MemoryData broadcast along its axis."""
    from .common import binary

    saved, ctx.node = ctx.node, dq
    try:
        qn = dq.inputs[0].producer()
        x = qn.inputs[0]
        if _requantized_after_activation(ctx, qn, y):
            return ctx.alias(y, ctx.blob(x), ctx.drop(x))
        scale, zp, qdt, axis, _ = _qparams(ctx, qn)
        if qdt not in _RANGE:
            ctx.fail(f"fake quantization to {qdt} is not mapped to ncnn")
        lo, hi = _RANGE[qdt]
        z = int(_zp_array(zp)[0])
        shp = ctx.shape(x)
        if scale.size > 1:
            axis = axis + len(shp) if axis < 0 else axis
            bshape = [1] * len(shp)
            bshape[axis] = scale.size
            sv = ctx.temp(y.name + "_scale", bshape, scale.astype(np.float32).reshape(bshape))
        else:
            sv = ctx.temp(y.name + "_scale", (), np.float32(scale.ravel()[0]))
        t1 = ctx.temp(y.name + "_div", shp)
        binary(ctx, 3, x, sv, t1)
        t2 = ctx.temp(y.name + "_round", shp)
        ctx.unary("UnaryOp", {0: 18}, x=t1, y=t2)
        t3 = ctx.temp(y.name + "_clamp", shp)
        ctx.unary("Clip", {0: float(lo - z), 1: float(hi - z)}, x=t2, y=t3)
        binary(ctx, 2, t3, sv, y)
    finally:
        ctx.node = saved


def _zp_array(zp):
    return np.zeros(1, np.int64) if zp is None else np.asarray(zp).astype(np.int64).ravel()


# ---- int8 layers ---------------------------------------------------------------------------
def input_scale(ctx, x):
    """(ncnn's bottom_blob_int8_scale, the float tensor the layer reads) for a layer input
    ``x``, or (None, why not)."""
    dq = x.producer()
    if dq is None or dq.op_type != "DequantizeLinear":
        return None, "its input is not dequantized (float)"
    qn = dq.inputs[0].producer()
    if qn is None or qn.op_type != "QuantizeLinear":
        return None, "its input is not a QuantizeLinear -> DequantizeLinear pair"
    scale, zp, qdt, _, block = _qparams(ctx, dq)
    if scale is None or scale.size != 1 or block:
        return None, "its input has more than one quantization scale"
    if qdt != "int8":
        return None, f"its input is quantized to {qdt or 'an unknown type'}, ncnn's int8 is signed"
    if not _zero(zp):
        return None, "its input's zero point is not 0 (asymmetric; ncnn's int8 is symmetric)"
    s = float(scale.ravel()[0])
    if not np.isfinite(s) or s <= 0:
        return None, "its input's scale is not a positive number"
    return (np.float32(1.0 / s), float_source(ctx, x)), None


def weight_int8(ctx, w, out_axis: int, groups: int = 0):
    """(int8 weight in ONNX layout, ncnn weight scales) for a constant weight ``w`` =
    DequantizeLinear(int8), with one scale per output channel along ``out_axis`` (per group
    when ``groups``), or (None, why not)."""
    dq = w.producer()
    if dq is None or dq.op_type != "DequantizeLinear":
        return None, "its weight is not an int8 constant with a DequantizeLinear"
    q = ctx.const(dq.inputs[0])
    if q is None:
        return None, "its weight is computed at run time"
    q = np.asarray(q)
    scale, zp, _, axis, block = _qparams(ctx, dq)
    if q.dtype != np.int8:
        return None, f"its weight is {q.dtype}, not int8"
    if scale is None or block:
        return None, "its weight is block-quantized"
    if not _zero(zp):
        return None, "its weight's zero point is not 0"
    n = q.shape[out_axis]
    if scale.size == 1:
        per = np.full(n, float(scale.ravel()[0]))
    else:
        axis = axis + q.ndim if axis < 0 else axis
        if axis != out_axis % q.ndim or scale.size != n:
            return None, "its weight is quantized along another axis than the output channels"
        per = scale.ravel()
    if groups:
        per_g = per.reshape(groups, -1)
        if not np.all(per_g == per_g[:, :1]):
            return None, ("its weight scales differ within a group (ncnn's grouped int8 "
                          "convolution has one scale per group)")
        per = per_g[:, 0]
    if np.any(~np.isfinite(per)) or np.any(per < 0):
        return None, "its weight scales are not finite and non-negative"
    with np.errstate(divide="ignore"):
        ncnn_scales = np.where(per > 0, 1.0 / per, 0.0).astype(np.float32)
    return (q, ncnn_scales), None


def log(ctx, layer: str, path: str, why: str | None = None):
    n = ctx.node
    ctx.quant_log.append((n.name or n.op_type, n.op_type, layer, path, why))


def quant_notes(entries) -> list[str]:
    """One note for the int8 layers, one for those left in float32 with their reasons."""
    notes = []
    i8 = [e for e in entries if e[3] == "int8"]
    f32 = [e for e in entries if e[3] != "int8"]
    if i8:
        kinds = {}
        for e in i8:
            kinds[e[2]] = kinds.get(e[2], 0) + 1
        notes.append(f"int8: {len(i8)} layer(s) run in int8 (" + ", ".join(
            f"{k} x{v}" for k, v in kinds.items()) + ")")
    if f32:
        shown = "; ".join(f"{name!r} ({op}): {why}" for name, op, _, _, why in f32[:5])
        more = f"; and {len(f32) - 5} more" if len(f32) > 5 else ""
        notes.append(f"int8: {len(f32)} quantized layer(s) run in float32 with dequantized "
                     f"weights: {shown}{more}")
    return notes
