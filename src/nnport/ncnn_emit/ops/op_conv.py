"""Conv -> Convolution / ConvolutionDepthWise / Convolution1D; ConvTranspose -> Deconvolution.

ncnn params (operators.md): Convolution 0=num_output 1=kernel_w 11=kernel_h 2=dilation_w
12=dilation_h 3=stride_w 13=stride_h 4=pad_left 15=pad_right 14=pad_top 16=pad_bottom
5=bias_term 6=weight_data_size 9=activation_type 10=activation_params; ConvolutionDepthWise adds
7=group; pad_left -233/-234 = SAME_UPPER/SAME_LOWER.  Deconvolution adds 18=output_pad_right
19=output_pad_bottom.  Weights: weight (tagged), bias (raw).
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from . import register
from ..emit import attrs_of


def _pads(ctx, a, nsp):
    auto = a.get("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return auto, None
    if auto == "VALID":
        return "VALID", [0] * (2 * nsp)
    return "NOTSET", list(a.get("pads") or [0] * (2 * nsp))


@register("Conv")
def conv(ctx, node):
    a = attrs_of(node)
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    W = ctx.need_const(w, "the Conv weight").astype(np.float32)
    nsp = W.ndim - 2
    if nsp not in (1, 2):
        ctx.fail(f"{nsp}-D convolution is not mapped to ncnn (1-D and 2-D are)")
    k = list(a.get("kernel_shape") or W.shape[2:])
    s = list(a.get("strides") or [1] * nsp)
    d = list(a.get("dilations") or [1] * nsp)
    group = int(a.get("group", 1))
    auto, pads = _pads(ctx, a, nsp)
    cout = W.shape[0]
    p = {0: cout, 5: int(b is not None), 6: int(W.size)}
    if nsp == 2:
        p.update({1: k[1], 11: k[0], 2: d[1], 12: d[0], 3: s[1], 13: s[0]})
        if pads is None:
            p[4] = -233 if auto == "SAME_UPPER" else -234
        else:
            p.update({4: pads[1], 14: pads[0], 15: pads[3], 16: pads[2]})
        typ = "Convolution"
        if group != 1:
            typ = "ConvolutionDepthWise"
            p[7] = group
    else:
        if group != 1:
            ctx.fail("grouped 1-D convolution is not mapped to ncnn")
        p.update({1: k[0], 2: d[0], 3: s[0]})
        if pads is None:
            p[4] = -233 if auto == "SAME_UPPER" else -234
        else:
            p.update({4: pads[0], 15: pads[1]})
        typ = "Convolution1D"
    weights = [Weight(W, flagged=True)]
    if b is not None:
        weights.append(Weight(ctx.need_const(b, "the Conv bias")))
    ctx.add(typ, [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))], p, weights)


@register("ConvTranspose")
def conv_transpose(ctx, node):
    a = attrs_of(node)
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    W = ctx.need_const(w, "the ConvTranspose weight").astype(np.float32)
    if W.ndim != 4:
        ctx.fail("only 2-D ConvTranspose is mapped to ncnn")
    group = int(a.get("group", 1))
    cin, cout_g, kh, kw = W.shape
    # ONNX (cin, cout/g, kh, kw) -> ncnn (g, cout/g, cin/g, kh, kw)
    Wn = W.reshape(group, cin // group, cout_g, kh, kw).transpose(0, 2, 1, 3, 4)
    s = list(a.get("strides") or [1, 1])
    d = list(a.get("dilations") or [1, 1])
    auto, pads = _pads(ctx, a, 2)
    if pads is None or a.get("output_shape"):
        ctx.fail("ConvTranspose with auto_pad SAME or output_shape is not mapped to ncnn")
    op = list(a.get("output_padding") or [0, 0])
    p = {0: cout_g * group, 1: kw, 11: kh, 2: d[1], 12: d[0], 3: s[1], 13: s[0],
         4: pads[1], 14: pads[0], 15: pads[3], 16: pads[2], 18: op[1], 19: op[0],
         5: int(b is not None), 6: int(W.size)}
    typ = "Deconvolution"
    if group != 1:
        typ = "DeconvolutionDepthWise"
        p[7] = group
    weights = [Weight(Wn, flagged=True)]
    if b is not None:
        weights.append(Weight(ctx.need_const(b, "the ConvTranspose bias")))
    ctx.add(typ, [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))], p, weights)
