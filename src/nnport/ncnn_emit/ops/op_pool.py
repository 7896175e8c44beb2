"""MaxPool/AveragePool/Global*Pool, and the adaptive pools ``legalize/adaptive_pool.py`` found
(``nnport::AdaptivePool``) -> Pooling1D / Pooling / Pooling3D.

ncnn params (operators.md): Pooling 0=pooling_type (0 max, 1 avg) 1=kernel_w 11=kernel_h
2=stride_w 12=stride_h 3=pad_left 14=pad_right 13=pad_top 15=pad_bottom 4=global_pooling
5=pad_mode (0 full/ceil, 1 valid/floor, 2 SAME_UPPER, 3 SAME_LOWER) 6=avgpool_count_include_pad;
Pooling1D 0 1 2 3 4 5 6 14=pad_right; Pooling3D adds 21=kernel_d 22=stride_d 23=pad_front
16=pad_behind.  Adaptive pooling (all three): 7=adaptive_pooling 8=out_w 18=out_h 28=out_d, the
windows torch's: [floor(i*L/o), ceil((i+1)*L/o)).  Padding 0=top 1=bottom 2=left 3=right 4=type 5=value 7=front 8=behind.

ONNX's ceil_mode drops a last window that would start in the end padding and its
count_include_pad divides by the window clipped to input+pads; ncnn's full-padding mode does
neither.  So, for static sizes, the exact output size is computed here and written as valid
mode with the missing rows added to the end pads (ncnn excludes them from averages).  An
AveragePool that counts the pads is ncnn's count-the-pads mode (6=1, divide by the kernel
size) when every window lies within input + pads, else an explicit zero Padding layer first.
Global pooling gives a 1-D blob; a Reshape restores the ONNX [C,1,1].
"""
from __future__ import annotations

import math

from ...passes.match import DOMAIN
from ..registry import register
from .common import attrs_of

_TYPE = {1: "Pooling1D", 2: "Pooling", 3: "Pooling3D"}


def _out_size(n, k, s, pb, pe, ceil):
    span = n + pb + pe - k
    out = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + pb:
        out -= 1
    return out


def _spatial_params(nsp, k, s, pb, pe):
    """ncnn pooling params for kernel/stride/pads given outermost first (d, h, w)."""
    if nsp == 1:
        return {1: k[0], 2: s[0], 3: pb[0], 14: pe[0]}
    p = {1: k[-1], 11: k[-2], 2: s[-1], 12: s[-2], 3: pb[-1], 14: pe[-1], 13: pb[-2],
         15: pe[-2]}
    if nsp == 3:
        p.update({21: k[0], 22: s[0], 23: pb[0], 16: pe[0]})
    return p


# MaxPool 8: storage_order and the indices output (refused); 10: ceil_mode, dilations (refused
# unless 1); AveragePool 1 is not run by onnxruntime, 7 adds count_include_pad
@register({"MaxPool": (1, 8, 10, 11, 12, 22), "AveragePool": (7, 10, 11, 19, 22)})
def pool(ctx, node):
    a = attrs_of(node)
    x, y = node.inputs[0], node.outputs[0]
    if len(node.outputs) > 1 and node.outputs[1].name:
        ctx.fail("MaxPool indices output has no ncnn equivalent")
    k = list(a["kernel_shape"])
    nsp = len(k)
    if nsp not in (1, 2, 3) or ctx.rank(x) != nsp + 2:
        ctx.fail(f"{nsp}-D pooling is not mapped to ncnn (1-D, 2-D and 3-D are)")
    s = list(a.get("strides") or [1] * nsp)
    if any(d != 1 for d in (a.get("dilations") or [1] * nsp)):
        ctx.fail("dilated pooling has no ncnn equivalent")
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = list(a.get("pads") or [0] * (2 * nsp))
    pb, pe = pads[:nsp], pads[nsp:]
    ceil = bool(a.get("ceil_mode", 0))
    avg = node.op_type == "AveragePool"
    include = avg and bool(a.get("count_include_pad", 0)) and any(pads)
    p = {0: 1 if avg else 0}
    pre = []  # (type, params) of layers before the pooling
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if include:
            ctx.fail("AveragePool with auto_pad SAME and count_include_pad=1 is not mapped "
                     "to ncnn")
        p.update(_spatial_params(nsp, k, s, [0] * nsp, [0] * nsp))
        p[5] = 2 if auto == "SAME_UPPER" else 3
    else:
        if auto == "VALID":
            pb, pe = [0] * nsp, [0] * nsp
        xs = ctx.shape(x)[2:]
        dyn = ctx.probe.shape_varies.get(x.name)
        static = dyn is None or not dyn[2:].any()
        outs = [_out_size(n, kk, ss, b, e, ceil) for n, kk, ss, b, e in zip(xs, k, s, pb, pe)]
        inside = static and all((o - 1) * ss + kk <= n + b + e
                                for o, n, kk, ss, b, e in zip(outs, xs, k, s, pb, pe))
        if include and inside:
            # every window lies within input + pads: ncnn's own count-the-pads mode divides
            # each by the kernel size, as ONNX does, with no Padding layer before it
            p.update(_spatial_params(nsp, k, s, pb, pe))
            p.update({5: 1, 6: 1})
        else:
            if include:  # the pads are data: zeros counted in every average
                pp = {2: pb[-1], 3: pe[-1], 4: 0, 5: 0.0}
                if nsp >= 2:
                    pp.update({0: pb[-2], 1: pe[-2]})
                if nsp == 3:
                    pp.update({7: pb[0], 8: pe[0]})
                pre.append(("Padding", pp))
                xs = [n + b + e for n, b, e in zip(xs, pb, pe)]
                pb, pe = [0] * nsp, [0] * nsp
            if static:
                pe = [max(e, (o - 1) * ss + kk - n - b)
                      for o, n, kk, ss, b, e in zip(outs, xs, k, s, pb, pe)]
                p.update(_spatial_params(nsp, k, s, pb, pe))
                p[5] = 1
            else:
                p.update(_spatial_params(nsp, k, s, pb, pe))
                p[5] = 0 if ceil else 1
    if avg:
        p.setdefault(6, 0)  # other pads left in ncnn's params are never counted (see above)

    def one(src, dst):
        for typ, pp in pre:
            src = ctx.add(typ, [src], [ctx.g.unique(y.name + "_padded")], pp)
        return ctx.add(_TYPE[nsp], [src], [dst], p)

    ctx.per_channel(x, y, one)


@register({"GlobalAveragePool": (1, 22), "GlobalMaxPool": (1, 22)})
def global_pool(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    nsp = ctx.rank(x) - 2
    if nsp not in (1, 2, 3):
        ctx.fail("global pooling is mapped to ncnn for (N, C, 1 to 3 spatial dims) tensors")
    keys = {1: [0, 1], 2: [0, 1, 2], 3: [0, 1, 11, 2]}[nsp]

    def one(src, dst):
        mid = ctx.add(_TYPE[nsp], [src], [ctx.g.unique(y.name + "_flat")],
                      {0: 0 if node.op_type == "GlobalMaxPool" else 1, 4: 1})
        return ctx.add("Reshape", [mid], [dst], {k: (-1 if k == 2 or (nsp == 1 and k == 1)
                                                     else 1) for k in keys})

    ctx.per_channel(x, y, one)


@register("AdaptivePool", 1, domain=DOMAIN)
def adaptive_pool(ctx, node):
    """Adaptive average/max pooling of (N, C, L...) to ``output_size`` (outermost first)."""
    a = attrs_of(node)
    x, y = node.inputs[0], node.outputs[0]
    out = [int(o) for o in a.get("output_size") or ()]
    mode = a.get("mode", "avg")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    nsp = len(out)
    if nsp not in (1, 2, 3) or ctx.rank(x) != nsp + 2 or mode not in ("avg", "max") or \
            any(o < 1 for o in out):
        ctx.fail(f"adaptive {mode} pooling to {out} of a rank-{ctx.rank(x)} tensor is not "
                 "mapped to ncnn (1-D, 2-D and 3-D are)")
    p = {0: 1 if mode == "avg" else 0, 7: 1}
    p.update(zip((8, 18, 28), reversed(out)))  # out_w, out_h, out_d

    def one(src, dst):
        return ctx.add(_TYPE[nsp], [src], [dst], p)

    ctx.per_channel(x, y, one)
