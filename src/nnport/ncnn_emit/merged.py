"""Rank-5 tensors with a batch other than 1 (video models on N clips: (N, C, D, H, W)).

ncnn's Mat has four dims (c, d, h, w).  A batch of 1 is dropped; a batch of N has no axis
left, so such a tensor is held as one blob with the batch merged into the channels,
(c=N*C, d, h, w): the same bytes in the same order (``Context.merged``; graph inputs and
outputs so held are named ``m<N>`` in their Input/Noop layers, see ``runner.py``).  That is
exact for an op only when the op cannot tell N*C channels from C channels of N samples:

- element-wise ops of one tensor (activations, Identity/Dropout, Cast);
- binary ops whose tensor operands all have the output's (N, C), or whose other operand is a
  constant (broadcast to (N, C) and merged the same way, BinaryOp 0=op_type) or a scalar;
- ops that treat every channel alone: MaxPool/AveragePool/Global*Pool/nnport::AdaptivePool
  (Pooling3D on the N*C channels, ``Context.per_channel``), Pad of D, H and W (Padding
  7=front 8=behind 0=top 1=bottom 2=left 3=right), BatchNormalization (its statistics
  repeated N times);
- Reshape/Flatten/Squeeze/Unsqueeze of static shapes: the merged blob has the tensor's bytes
  in its order, so an ncnn Reshape to the other side's ncnn shape is the same reshape (torch's
  GroupNorm export reshapes (N, C, D, H, W) to (N, G, L) and back);
- Slice and Reduce* (keeping the rank) on D, H and W: every channel cut or reduced alike
  (Crop, Reduction on ncnn's d, h, w; ``Context.axis`` refuses N and C);
- Concat of merged operands: on the batch axis the sample blocks follow each other (ncnn
  Concat 0=axis on the channels); on D, H or W each channel grows alike (ncnn axis 1-3); on C,
  sample i's channels of every operand, in operand order, then sample i+1's (Crops, then one
  Concat of them all on the channels) — ``torch.stack`` of N-sample 4-D tensors is this (an
  operand with a dropped batch of 1 is the merged layout of one sample);
- ops that treat every sample alone: Conv/ConvTranspose (Convolution3D, Deconvolution3D...),
  InstanceNormalization, GroupNormalization: sample i is channels [i*C, (i+1)*C) (Crop
  9=starts 10=ends 11=axes), run alone, and the N results are concatenated on the channels
  (Concat 0=axis), which is the merged output (``Context.per_sample``).

Any other op that reads or writes such a tensor is refused with one line naming the node.
"""
from __future__ import annotations

import numpy as np

from .ops.op_reduce import OPS as REDUCE  # the Reduce* ops the reduction emitter maps

ELEMENTWISE = {
    "Abs", "Neg", "Floor", "Ceil", "Sqrt", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos",
    "Atan", "Reciprocal", "Round", "Identity", "Dropout", "Relu", "Sigmoid", "Tanh",
    "Softplus", "Mish", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Gelu", "Clip",
    "Celu", "Shrink", "Erf", "Sign", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Softsign",
    "Cast"}
PER_CHANNEL_OR_SAMPLE = {
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Pad", "BatchNormalization",
    "Conv", "ConvTranspose", "InstanceNormalization", "GroupNormalization",
    "AdaptivePool"}  # the last: nnport::AdaptivePool (legalize/adaptive_pool.py)
RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}
BINARY = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "Pow": 6, "Sum": 0}
# fused patterns (legalize/patterns.py) that emit one element-wise layer: GELU, Swish, HardSwish
_FUSED_ELEMENTWISE = {"_gelu", "_swish", "_hardswish"}


def _batch(ctx, node) -> int:
    """The N of the first merged value ``node`` reads or writes, else 0."""
    for v in node.inputs:
        if v is not None and v.name in ctx.probe.shape and not ctx.is_const(v) and \
                ctx.merged(v):
            return ctx.merged(v)
    for v in node.outputs:
        shp = ctx.probe.shape.get(v.name)
        if v.name and shp is not None and len(shp) == 5 and shp[0] != 1 and \
                v.name not in ctx.probe.value:
            return int(shp[0])
    return 0


def emitter(ctx, node, fn):
    """The emitter to run for ``node``: ``fn`` when no merged value is involved or ``fn`` is
    exact on them, the merged binary op, or a ConversionError naming the node."""
    n = _batch(ctx, node)
    ctx.merged_ok = bool(n)
    if not n:
        return fn
    op = node.op_type
    if fn.__module__.endswith("legalize.patterns"):
        ok = fn.__qualname__.split(".")[0] in _FUSED_ELEMENTWISE
    else:
        ok = op in ELEMENTWISE or op in PER_CHANNEL_OR_SAMPLE or op in BINARY
    if op in RESHAPES and any(ctx.probe.shape_varies.get(v.name) is not None and
                              np.any(ctx.probe.shape_varies[v.name])
                              for v in (node.inputs[0], node.outputs[0])):
        ctx.fail(f"reshape of a rank-5 tensor with a batch of {n} (held as N*C ncnn channels) "
                 "with size-dependent dims; convert with a fixed --input-shape")
    ok = ok or op in RESHAPES or op == "Concat"
    # on D, H or W every channel is cut or reduced alike (Context.axis refuses N and C);
    # a reduction must keep the rank to stay in this layout
    ok = ok or op == "Slice" or (op in REDUCE and ctx.rank(node.outputs[0]) == 5)
    if not ok:
        ctx.fail(f"reads or writes a rank-5 tensor with a batch of {n}, which ncnn holds as N*C "
                 f"channels (4 dims at most); {op} is not mapped on that layout (element-wise, "
                 "per-channel and per-sample ops are)")
    if op in BINARY and not fn.__module__.endswith("legalize.patterns"):
        return lambda ctx, node: _binary(ctx, node, fn)
    if op == "Concat":
        return _concat
    return fn


def _concat(ctx, node):
    y = node.outputs[0]
    ins = [v for v in node.inputs if v is not None and v.name and int(np.prod(ctx.shape(v)))]
    n = ctx.merged(y) if ctx.rank(y) == 5 else 0
    # a rank-5 operand with a dropped batch of 1 is the merged layout of one sample
    if not n or any(ctx.is_const(v) or ctx.rank(v) != 5 or not (ctx.merged(v) or ctx.drop(v))
                    for v in ins):
        ctx.fail(f"Concat of a rank-5 tensor with a batch of {n} held as N*C ncnn channels: "
                 "every operand must be such a tensor computed at run time")
    axis = int(node.attributes["axis"].value)
    axis = axis + 5 if axis < 0 else axis
    if axis != 1:  # batch: sample blocks in order; D/H/W: every channel alike
        return ctx.add("Concat", [ctx.blob(v) for v in ins], [ctx.out(y, False)],
                       {0: 0 if axis == 0 else axis - 1})
    parts = []
    for i in range(n):
        for v in ins:
            c = int(ctx.shape(v)[1])
            parts.append(ctx.add("Crop", [ctx.blob(v)], [ctx.g.unique(f"{v.name}_s{i}")],
                                 {9: [i * c], 10: [(i + 1) * c], 11: [0]}))
    return ctx.add("Concat", parts, [ctx.out(y, False)], {0: 0})


def _binary(ctx, node, fn):
    ins = [v for v in node.inputs if v is not None and v.name]
    if len(ins) == 1 or any(ctx.const(v) is not None and np.size(ctx.const(v)) == 1
                            for v in ins):
        return fn(ctx, node)  # an alias, or one BinaryOp with a scalar: any layout
    y = node.outputs[0]
    ys = tuple(ctx.shape(y))
    blobs = []
    for v in ins:
        k = ctx.const(v)
        if k is not None and len(ins) == 2:
            blobs.append(_merged_const(ctx, v, np.asarray(k, np.float32), ys))
        elif ctx.merged(v) and tuple(ctx.shape(v)[:2]) == ys[:2] and (
                len(ins) == 2 or tuple(ctx.shape(v)) == ys):  # Eltwise does not broadcast
            blobs.append(ctx.blob(v))
        else:
            ctx.fail(f"{v.name!r} of shape {list(ctx.shape(v))} broadcasts against a rank-5 "
                     f"tensor with a batch of {ys[0]} held as N*C ncnn channels; only operands "
                     f"of the same (N, C), constants and scalars are exact on that layout")
    if len(blobs) > 2:
        return ctx.add("Eltwise", blobs, [ctx.out(y, False)], {0: 1})  # 0=op_type 1 sum
    return ctx.add("BinaryOp", blobs, [ctx.out(y, False)], {0: BINARY[node.op_type]})


def _merged_const(ctx, v, k: np.ndarray, ys: tuple) -> str:
    """A constant broadcast against an (N, C, D, H, W) output, as a MemoryData of the merged
    layout: (1, d, h, w) when it is the same for every channel (ncnn broadcasts c), else
    repeated to (N*C, d, h, w)."""
    if k.ndim > 5:
        ctx.fail(f"constant {v.name!r} of rank {k.ndim}")
    k = k.reshape((1,) * (5 - k.ndim) + k.shape)
    if k.shape[:2] == (1, 1):
        return ctx.memory_data(np.ascontiguousarray(k[0]), v.name)
    full = np.broadcast_to(k, ys[:2] + k.shape[2:])
    return ctx.memory_data(np.ascontiguousarray(full.reshape((ys[0] * ys[1],) + k.shape[2:])),
                           v.name)
