"""MaxPool/AveragePool/Global*Pool -> Pooling.

ncnn params: 0=pooling_type (0 max, 1 avg) 1=kernel_w 11=kernel_h 2=stride_w 12=stride_h
3=pad_left 14=pad_right 13=pad_top 15=pad_bottom 4=global_pooling 5=pad_mode (0 full/ceil,
1 valid/floor, 2 SAME_UPPER, 3 SAME_LOWER) 6=avgpool_count_include_pad.  Global pooling gives a
1-D blob; a Reshape (0=w 1=h 2=c) restores the ONNX [C,1,1].
"""
from __future__ import annotations

from . import register
from ..emit import attrs_of


@register("MaxPool", "AveragePool")
def pool(ctx, node):
    a = attrs_of(node)
    x = node.inputs[0]
    if len(node.outputs) > 1 and node.outputs[1].name:
        ctx.fail("MaxPool indices output has no ncnn equivalent")
    k = list(a["kernel_shape"])
    if len(k) != 2:
        ctx.fail("only 2-D pooling is mapped to ncnn")
    s = list(a.get("strides") or [1, 1])
    if any(d != 1 for d in (a.get("dilations") or [1, 1])):
        ctx.fail("dilated pooling has no ncnn equivalent")
    auto = a.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = list(a.get("pads") or [0, 0, 0, 0])
    mode = 0 if a.get("ceil_mode", 0) else 1
    if auto == "SAME_UPPER":
        mode = 2
    elif auto == "SAME_LOWER":
        mode = 3
    p = {0: 0 if node.op_type == "MaxPool" else 1, 1: k[1], 11: k[0], 2: s[1], 12: s[0],
         3: pads[1], 13: pads[0], 14: pads[3], 15: pads[2], 5: mode}
    if node.op_type == "AveragePool":
        p[6] = int(a.get("count_include_pad", 0))
    ctx.add("Pooling", [ctx.blob(x)], [ctx.out(node.outputs[0], ctx.drop(x))], p)


@register("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    if ctx.rank(x) != 4 or not ctx.drop(x):
        ctx.fail("only 2-D global pooling of a batch-1 NCHW tensor is mapped to ncnn")
    mid = ctx.g.unique(y.name + "_flat")
    ctx.add("Pooling", [ctx.blob(x)], [mid], {0: 0 if node.op_type == "GlobalMaxPool" else 1,
                                                 4: 1})
    ctx.add("Reshape", [mid], [ctx.out(y, True)], {0: 1, 1: 1, 2: -1})
