"""Split into pieces of size 1, each squeezed on the split axis -> ``nnport::Unbind`` (PyTorch
target only).

Exporters write ``q, k, v = qkv.unbind(0)`` (every attention of timm's ViT and Swin) as one
Split and a Squeeze per piece; printed back as written that is four calls where PyTorch needs
one.  The fused node has the Squeezes' outputs and prints as ``a, b, c = x.unbind(d)``.  The
pattern must be exact: every piece has size 1 (statically known), is used by exactly one
Squeeze of the split axis and by nothing else.
"""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array, replace_value
from ..match import DOMAIN, finish, is_op


def _axis(value: ir.Value, axis: int) -> int | None:
    rank = None if value.shape is None else len(value.shape)
    if axis < 0:
        if rank is None:
            return None
        axis += rank
    if axis < 0 or (rank is not None and axis >= rank):
        return None  # out of range (the emitter says so): not a pattern
    return axis


def _sizes_are_one(split: ir.Node, axis: int) -> bool:
    n = len(split.outputs)
    sizes = None
    if len(split.inputs) > 1 and split.inputs[1] is not None:
        arr = const_array(split.inputs[1])
        sizes = None if arr is None else [int(s) for s in arr.reshape(-1)]
    elif "split" in split.attributes:
        sizes = list(split.attributes["split"].as_ints())
    if sizes is not None:
        return sizes == [1] * n
    x = split.inputs[0]  # equal pieces: the dim must be known to be n
    d = None if x.shape is None or axis >= len(x.shape) else x.shape[axis]
    return isinstance(d, int) and d == n


def _squeeze_axes(node: ir.Node) -> list[int] | None:
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = const_array(node.inputs[1])
        return None if arr is None else [int(a) for a in arr.reshape(-1)]
    if "axes" in node.attributes:
        return list(node.attributes["axes"].as_ints())
    return None  # all size-1 axes: not only ours


def _match(split: ir.Node) -> tuple[int, list[ir.Node]] | None:
    x = split.inputs[0] if split.inputs else None
    if x is None or len(split.outputs) < 2:
        return None
    attr = split.attributes.get("axis")
    axis = _axis(x, 0 if attr is None else attr.as_int())
    if axis is None or not _sizes_are_one(split, axis):
        return None
    squeezes = []
    for piece in split.outputs:
        uses = list(piece.uses())
        if piece.is_graph_output() or len(uses) != 1:
            return None
        sq, idx = uses[0]
        if not is_op(sq, "Squeeze") or idx != 0:
            return None
        axes = _squeeze_axes(sq)
        if axes is None or len(axes) != 1 or _axis(piece, axes[0]) != axis:
            return None
        squeezes.append(sq)
    return axis, squeezes


def fuse_unbind(model: ir.Model) -> PassResult:
    """Rewrite every Split + per-piece Squeeze of the main graph."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not is_op(node, "Split") or node.graph is not graph:
            continue
        m = _match(node)
        if m is None:
            continue
        axis, squeezes = m
        fused = ir.Node(DOMAIN, "Unbind", [node.inputs[0]], num_outputs=len(squeezes),
                        attributes=[ir.AttrInt64("axis", axis)], name=node.name or "unbind")
        fused.metadata_props.update(node.metadata_props)  # its module scope (torch_emit/tree.py)
        graph.insert_before(node, fused)
        for sq, new in zip(squeezes, fused.outputs):
            old = sq.outputs[0]
            new.shape, new.type = old.shape, old.type
            replace_value(old, new, keep_name=True)
        count += 1
    return finish(model, count)
