"""Conv -> Convolution1D / Convolution / Convolution3D (grouped: ConvolutionDepthWise1D / 2-D /
3D); ConvTranspose -> Deconvolution1D / Deconvolution / Deconvolution3D (grouped:
DeconvolutionDepthWise*).

ncnn params (operators.md): 0=num_output 1=kernel_w 11=kernel_h 21=kernel_d 2=dilation_w
12=dilation_h 22=dilation_d 3=stride_w 13=stride_h 23=stride_d 4=pad_left 15=pad_right
14=pad_top 16=pad_bottom 24=pad_front 17=pad_behind 5=bias_term 6=weight_data_size 7=group
(depthwise variants) 9=activation_type 10=activation_params; pad_left -233/-234 =
SAME_UPPER/SAME_LOWER.  Deconvolution* add 18=output_pad_right 19=output_pad_bottom
(20=output_pad_behind for 3-D).  Weights: weight (tagged), bias (raw); every layout is
output-channel major: Convolution* (out, in/g, [kd,] [kh,] kw) like ONNX, Deconvolution*
(g, out/g, in/g, [kd,] [kh,] kw).  Blobs: 1-D conv on (c=h, w), 3-D on (c, d, h, w).
"""
from __future__ import annotations

import numpy as np

from ...passes.match import DOMAIN
from ..graph import Weight
from ..registry import register
from .common import attrs_of, whole as _whole


def _pads(ctx, a, nsp):
    auto = a.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return auto, None
    if auto == "VALID":
        return "VALID", [0] * (2 * nsp)
    return "NOTSET", list(a.get("pads") or [0] * (2 * nsp))


_SUFFIX = {1: "1D", 2: "", 3: "3D"}


def _geometry(nsp, k, d, st, pads, auto):
    """kernel/dilation/stride/pad params; lists are outermost first (d, h, w)."""
    if nsp == 1:
        p = {1: k[0], 2: d[0], 3: st[0]}
    else:
        p = {1: k[-1], 11: k[-2], 2: d[-1], 12: d[-2], 3: st[-1], 13: st[-2]}
        if nsp == 3:
            p.update({21: k[0], 22: d[0], 23: st[0]})
    if pads is None:
        p[4] = -233 if auto == "SAME_UPPER" else -234
        return p
    b, e = pads[:nsp], pads[nsp:]
    p.update({4: b[-1], 15: e[-1]})
    if nsp >= 2:
        p.update({14: b[-2], 16: e[-2]})
    if nsp == 3:
        p.update({24: b[0], 17: e[0]})
    return p


def _operands(ctx, node, what: str):
    """(x, weight, bias or None, spatial dims) of a Conv/ConvTranspose, checked for ncnn.  A
    weight computed at run time (``F.conv2d(x, w)`` with ``w`` an input) is returned as None:
    the layer then reads it, and the bias, from extra bottoms (``dynamic_weight``)."""
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None \
        and node.inputs[2].name else None
    W = ctx.const(w)
    W = None if W is None else np.asarray(W, np.float32)
    nsp = len(ctx.shape(w)) - 2
    if nsp not in (1, 2, 3):
        ctx.fail(f"{nsp}-D {what} is not mapped to ncnn (1-D, 2-D and 3-D are)")
    if W is None or (b is not None and not ctx.is_const(b)):
        if nsp == 3:
            ctx.fail(f"a 3-D {what} whose weight or bias is computed at run time has no ncnn "
                     "equivalent (dynamic_weight exists for 1-D and 2-D)")
        return x, None, b, nsp
    bias = None if b is None else np.asarray(ctx.need_const(b, f"the {what} bias"), np.float32)
    return x, W, bias, nsp


def _emit(ctx, node, typ, x, p, W, bias, dynamic_key=19):
    if W is None:  # dynamic_weight=1: bottoms x, weight[, bias]
        ins = [_whole(ctx, node.inputs[1])]
        if bias is not None:
            ins.append(_whole(ctx, bias))
        p = {**p, dynamic_key: 1}
        p[6] = int(np.prod(ctx.shape(node.inputs[1])))

        def one(src, dst):
            return ctx.add(typ, [src] + ins, [dst], dict(p))

        return ctx.per_sample(x, node.outputs[0], one)

    def one(src, dst):
        weights = [Weight(W, flagged=True)] + ([] if bias is None else [Weight(bias)])
        return ctx.add(typ, [src], [dst], dict(p), weights)

    ctx.per_sample(x, node.outputs[0], one)


@register("Conv", (1, 11, 22))
def conv(ctx, node):
    a = attrs_of(node)
    x, W, b, nsp = _operands(ctx, node, "convolution")
    wshape = ctx.shape(node.inputs[1])
    k = list(a.get("kernel_shape") or wshape[2:])
    s = list(a.get("strides") or [1] * nsp)
    d = list(a.get("dilations") or [1] * nsp)
    group = int(a.get("group", 1))
    auto, pads = _pads(ctx, a, nsp)
    cout = wshape[0]
    p = {0: cout, 5: int(b is not None), 6: int(np.prod(wshape))}
    p.update(_geometry(nsp, k, d, s, pads, auto))
    typ = "Convolution" + _SUFFIX[nsp]
    if group != 1:
        typ = "ConvolutionDepthWise" + _SUFFIX[nsp]
        p[7] = group
    if _quantized(node):
        q = _int8(ctx, node, typ, nsp, group, W)
        if q is not None:
            Wq, wscales, (xscale, x) = q
            p[8] = 1  # int8_scale_term: weight scales (per output / per group), input scale
            weights = [Weight(Wq, flagged=True)] + ([] if b is None else [Weight(b)]) + \
                [Weight(wscales), Weight(np.array([xscale], np.float32))]
            return ctx.per_sample(x, node.outputs[0],
                                  lambda src, dst: ctx.add(typ, [src], [dst], dict(p), weights))
    _emit(ctx, node, typ, x, p, W, b)


def _quantized(node) -> bool:
    """A layer of a QDQ model: its input or weight comes from a DequantizeLinear."""
    return any(v is not None and v.producer() is not None and
               v.producer().op_type == "DequantizeLinear" for v in node.inputs[:2])


def _int8(ctx, node, typ, nsp, group, W):
    """(int8 weight, ncnn weight scales, ncnn input scale) when the Conv runs in int8 in ncnn,
    else None (logged with the reason); see ``op_quant``."""
    from .op_quant import input_scale, log, weight_int8

    why = None
    if nsp != 2:
        why = f"ncnn has no int8 {typ}"
    elif W is None:
        why = "its weight is computed at run time"
    if why is None:
        wq, why = weight_int8(ctx, node.inputs[1], 0, group if group != 1 else 0)
    if why is None:
        xscale, why = input_scale(ctx, node.inputs[0])
    if why is not None:
        log(ctx, typ, "float32", why)
        return None
    log(ctx, typ, "int8")
    return wq[0], wq[1], xscale


@register("ConvTranspose", (1, 11, 22))
def conv_transpose(ctx, node):
    a = attrs_of(node)
    x, W, b, nsp = _operands(ctx, node, "ConvTranspose")
    group = int(a.get("group", 1))
    wshape = ctx.shape(node.inputs[1])
    cin, cout_g = wshape[:2]
    ks = wshape[2:]
    # ONNX (cin, cout/g, *k) -> ncnn (g, cout/g, cin/g, *k); a dynamic weight is read as is
    Wn = None if W is None else np.ascontiguousarray(
        W.reshape(group, cin // group, cout_g, *ks).swapaxes(1, 2))
    k = list(a.get("kernel_shape") or ks)
    s = list(a.get("strides") or [1] * nsp)
    d = list(a.get("dilations") or [1] * nsp)
    auto, pads = _pads(ctx, a, nsp)
    if pads is None or a.get("output_shape"):
        ctx.fail("ConvTranspose with auto_pad SAME or output_shape is not mapped to ncnn")
    op = list(a.get("output_padding") or [0] * nsp)
    p = {0: cout_g * group, 5: int(b is not None), 6: int(np.prod(wshape)), 18: op[-1]}
    p.update(_geometry(nsp, k, d, s, pads, auto))
    if nsp >= 2:
        p[19] = op[-2]
    if nsp == 3:
        p[20] = op[0]
    typ = "Deconvolution" + _SUFFIX[nsp]
    if group != 1:
        typ = "DeconvolutionDepthWise" + _SUFFIX[nsp]
        p[7] = group
    if _quantized(node):
        from .op_quant import log

        log(ctx, typ, "float32", f"ncnn has no int8 {typ}")
    _emit(ctx, node, typ, x, p, Wn, b, dynamic_key=28)


@register("Col2Im", 18)
def col2im(ctx, node):
    """Col2Im (F.fold) -> Fold: 1=kernel_w 11=kernel_h 2=dilation_w 12=dilation_h 3=stride_w
    13=stride_h 4=pad_left 15=pad_right 14=pad_top 16=pad_bottom 20=output_w 21=output_h; one
    (C*kh*kw, L) sample in, (C, H, W) out."""
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    size = [int(v) for v in ctx.need_const(node.inputs[1], "Col2Im image_shape")]
    k = [int(v) for v in ctx.need_const(node.inputs[2], "Col2Im block_shape")]
    if len(size) != 2:
        ctx.fail("Col2Im is mapped to ncnn for 2-D images")
    d = list(a.get("dilations") or [1, 1])
    s = list(a.get("strides") or [1, 1])
    pads = list(a.get("pads") or [0, 0, 0, 0])
    p = {0: int(ctx.shape(y)[1]), 1: k[1], 11: k[0], 2: d[1], 12: d[0], 3: s[1], 13: s[0],
         4: pads[1], 15: pads[3], 14: pads[0], 16: pads[2], 20: size[1], 21: size[0]}
    ctx.per_sample(x, y, lambda src, dst: ctx.add("Fold", [src], [dst], p))


@register("Unfold", 1, domain=DOMAIN)
def unfold(ctx, node):
    """nnport::Unfold (F.unfold, found by ``legalize/unfold.py``) -> Unfold: 1=kernel_w
    11=kernel_h 2=dilation_w 12=dilation_h 3=stride_w 13=stride_h 4=pad_left 15=pad_right
    14=pad_top 16=pad_bottom 18=pad_value; one (C, H, W) sample in, (C*kh*kw, oh*ow) out."""
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    if ctx.rank(x) != 4 or ctx.rank(y) != 3:
        ctx.fail("Unfold is mapped to ncnn for (N, C, H, W) images")
    p = _geometry(2, list(a["kernel_shape"]), list(a["dilations"]), list(a["strides"]),
                  list(a["pads"]), "NOTSET")
    p[18] = float(a.get("value", 0.0))
    ctx.per_sample(x, y, lambda src, dst: ctx.add("Unfold", [src], [dst], p))


@register("DeformConv", (19, 22))
def deform_conv(ctx, node):
    """DeformConv (opset 19; ``torchvision.ops.deform_conv2d``) -> DeformableConv2D: bottoms
    x, offset[, mask]; params 0=num_output 1=kernel_w 11=kernel_h 2=dilation_w 12=dilation_h
    3=stride_w 13=stride_h 4=pad_left 15=pad_right 14=pad_top 16=pad_bottom 5=bias_term
    6=weight_data_size; weight (out, in, kh, kw) like ONNX's.  The offset layout is ONNX's:
    (dy, dx) of kernel tap i*kw+j at channels 2*(i*kw+j), 2*(i*kw+j)+1.  ncnn has one weight
    group and one offset group, and runs one sample."""
    a = attrs_of(node)
    x, w = node.inputs[0], node.inputs[1]
    offset = node.inputs[2]
    extra = list(node.inputs[3:]) + [None, None]
    b, mask = (v if v is not None and v.name else None for v in extra[:2])
    if len(ctx.shape(w)) != 4:
        ctx.fail("DeformConv is mapped to ncnn for 2-D images (DeformableConv2D)")
    for key in ("group", "offset_group"):
        if int(a.get(key, 1)) != 1:
            ctx.fail(f"DeformConv with {key}={a[key]} has no ncnn equivalent "
                     "(DeformableConv2D has one group)")
    for v in [x, offset] + ([mask] if mask is not None else []):
        if not ctx.drop(v):
            ctx.fail(f"DeformConv on a batch of {ctx.shape(v)[0]} is not mapped to ncnn "
                     "(DeformableConv2D runs one sample of x, offset and mask together)")
    W = np.asarray(ctx.need_const(w, "the DeformConv weight"), np.float32)
    bias = None if b is None else np.asarray(ctx.need_const(b, "the DeformConv bias"),
                                             np.float32)
    k = list(a.get("kernel_shape") or W.shape[2:])
    p = {0: W.shape[0], 5: int(bias is not None), 6: int(W.size)}
    p.update(_geometry(2, k, list(a.get("dilations") or [1, 1]),
                       list(a.get("strides") or [1, 1]),
                       list(a.get("pads") or [0, 0, 0, 0]), "NOTSET"))
    bottoms = [ctx.blob(x), ctx.blob(offset)] + ([ctx.blob(mask)] if mask is not None else [])
    weights = [Weight(W, flagged=True)] + ([] if bias is None else [Weight(bias)])
    ctx.add("DeformableConv2D", bottoms, [ctx.out(node.outputs[0], True)], p, weights)
