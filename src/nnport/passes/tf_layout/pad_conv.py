"""Fuse a zero Pad on the spatial axes into the Conv that reads it (Keras ZeroPadding2D)."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array as const
from .common import attr, is_op, remove_if_dead, single_use


def _spatial_pads(pad: ir.Node, rank: int) -> list[int] | None:
    """[begin..., end...] for the spatial axes, or None when the Pad is not a zero pad of
    those axes only."""
    if attr(pad, "mode", "constant") not in ("constant", b"constant"):
        return None
    if len(pad.inputs) > 1:
        pads = const(pad.inputs[1])
        if pads is None:
            return None
        pads = [int(p) for p in pads.reshape(-1)]
        if len(pad.inputs) > 2 and pad.inputs[2] is not None:
            value = const(pad.inputs[2])
            if value is None or np.any(value != 0):
                return None
        axes = None
        if len(pad.inputs) > 3 and pad.inputs[3] is not None:
            axes = const(pad.inputs[3])
            if axes is None:
                return None
            axes = [int(a) + rank if a < 0 else int(a) for a in axes.reshape(-1)]
    else:
        pads = [int(p) for p in attr(pad, "pads", [])]
        if attr(pad, "value", 0.0) != 0.0:
            return None
        axes = None
    axes = axes if axes is not None else list(range(rank))
    if len(pads) != 2 * len(axes):
        return None
    begin = dict(zip(axes, pads[: len(axes)]))
    end = dict(zip(axes, pads[len(axes):]))
    if any(p < 0 for p in pads):
        return None
    if begin.get(0, 0) or begin.get(1, 0) or end.get(0, 0) or end.get(1, 0):
        return None
    return [begin.get(a, 0) for a in range(2, rank)] + [end.get(a, 0) for a in range(2, rank)]


def fuse_pad_into_conv(model: ir.Model) -> PassResult:
    graph = model.graph
    changed = False
    for conv in list(graph):
        if not is_op(conv, "Conv") or conv.graph is not graph:
            continue
        x = conv.inputs[0]
        pad = x.producer() if x is not None else None
        if not is_op(pad, "Pad") or not single_use(x):
            continue
        w = conv.inputs[1]
        rank = len(w.shape) if w is not None and w.shape is not None else None
        if rank is None:
            continue
        extra = _spatial_pads(pad, rank)
        if extra is None:
            continue
        auto_pad = attr(conv, "auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", b"NOTSET"):
            continue
        old = list(attr(conv, "pads", [0] * (2 * (rank - 2))))
        conv.attributes["pads"] = ir.AttrInt64s("pads", [a + b for a, b in zip(old, extra)])
        conv.replace_input_with(0, pad.inputs[0])
        remove_if_dead(graph, pad)
        changed = True
    return PassResult(model, changed)

