"""TensorFlow runs Conv1D / MaxPooling1D / AveragePooling1D as 2-D ops on [N, C, 1, W] between an
Unsqueeze and a Squeeze.  Make them 1-D again (``nn.Conv1d``, ``F.max_pool1d``) and cancel the
Unsqueeze/Squeeze (and Unsqueeze -> Transpose -> Squeeze) chains that are left around them.
"""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array as const, replace_value
from .common import attr, is_op, new_const, remove_if_dead

_POOLS = ("MaxPool", "AveragePool", "LpPool")


def _axes(node: ir.Node) -> list[int] | None:
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        a = const(node.inputs[1])
        return None if a is None else [int(x) for x in a.reshape(-1)]
    a = attr(node, "axes")
    return None if a is None else [int(x) for x in a]


def _norm(axes: list[int], rank: int) -> list[int]:
    return sorted(a + rank if a < 0 else a for a in axes)


def _rank(v: ir.Value) -> int | None:
    return len(v.shape) if v is not None and v.shape is not None else None


def _unit_h(x: ir.Value) -> bool:
    """Axis 2 of the rank-4 value ``x`` has size 1."""
    p = x.producer()
    if is_op(p, "Unsqueeze"):
        a = _axes(p)
        if a is not None and len(a) == 1 and _norm(a, 4) == [2]:
            return True
    if is_op(p, "Transpose"):
        u = p.inputs[0].producer()
        perm = attr(p, "perm")
        if is_op(u, "Unsqueeze") and perm is not None and len(perm) == 4:
            a = _axes(u)
            if a is not None and len(a) == 1 and perm[2] == _norm(a, 4)[0]:
                return True
    return x.shape is not None and len(x.shape) == 4 and x.shape[2] == 1


def _axes_const(graph: ir.Graph) -> ir.Value:
    import numpy as np

    return new_const(graph, np.array([2], dtype=np.int64), "axes_h")


def _to_1d(graph: ir.Graph, node: ir.Node) -> bool:
    x = node.inputs[0]
    if x is None or not _unit_h(x):
        return False
    if node.op_type == "Conv":
        w = const(node.inputs[1]) if len(node.inputs) > 1 else None
        if w is None or w.ndim != 4 or w.shape[2] != 1:
            return False
        kernel = [1, w.shape[3]]
    else:
        if any(o.uses() or o.is_graph_output() for o in node.outputs[1:]):
            return False
        kernel = list(attr(node, "kernel_shape", []))
        if len(kernel) != 2 or kernel[0] != 1:
            return False
    strides = list(attr(node, "strides", [1, 1]))
    dil = list(attr(node, "dilations", [1, 1]))
    pads = list(attr(node, "pads", [0, 0, 0, 0]))
    if strides[0] != 1 or dil[0] != 1 or pads[0] != 0 or pads[2] != 0:
        return False
    # input: [N, C, 1, W] -> [N, C, W]
    sq = ir.Node("", "Squeeze", [x, _axes_const(graph)], name=f"{node.name or 'op'}_to_1d",
                 num_outputs=1)
    graph.insert_before(node, sq)
    if x.dtype is not None:
        sq.outputs[0].dtype = x.dtype
    if x.shape is not None and len(x.shape) == 4:
        d = list(x.shape.dims)
        sq.outputs[0].shape = ir.Shape(d[:2] + d[3:])
    node.replace_input_with(0, sq.outputs[0])
    if node.op_type == "Conv":
        node.replace_input_with(1, new_const(graph, w[:, :, 0, :].copy(), f"{node.name}_w1d"))
    attrs = {"kernel_shape": kernel[1:], "strides": strides[1:], "dilations": dil[1:],
             "pads": [pads[1], pads[3]]}
    for k, v in attrs.items():
        if k in node.attributes or k == "kernel_shape":
            node.attributes[k] = ir.AttrInt64s(k, v)
    # output: [N, C', W'] -> Unsqueeze -> [N, C', 1, W'] for the readers that expect 4-D
    y = node.outputs[0]
    old_shape = y.shape
    un = ir.Node("", "Unsqueeze", [], name=f"{node.name or 'op'}_to_2d", num_outputs=1)
    graph.insert_after(node, un)
    if y.dtype is not None:
        un.outputs[0].dtype = y.dtype
    un.outputs[0].shape = old_shape
    if old_shape is not None and len(old_shape) == 4:
        d = list(old_shape.dims)
        y.shape = ir.Shape(d[:2] + d[3:])
    else:
        y.shape = None
    replace_value(y, un.outputs[0])
    un.resize_inputs(2)
    un.replace_input_with(0, y)
    un.replace_input_with(1, _axes_const(graph))
    return True


def _cancel(graph: ir.Graph, sq: ir.Node) -> bool:
    """Squeeze(Unsqueeze(x, a), a) -> x;  Squeeze(Transpose(Unsqueeze(x, a), p), b) with
    p[b] == a -> Transpose(x, p')."""
    b = _axes(sq)
    src = sq.inputs[0]
    p = src.producer() if src is not None else None
    if b is None or len(b) != 1 or p is None:
        return False
    out = sq.outputs[0]
    if is_op(p, "Unsqueeze"):
        a = _axes(p)
        rank = _rank(src) or (_rank(p.inputs[0]) + 1 if _rank(p.inputs[0]) else None)
        if a is None or len(a) != 1:
            return False
        if a != b and (rank is None or _norm(a, rank) != _norm(b, rank)):
            return False
        x = p.inputs[0]
        if out.is_graph_output() and (x.is_graph_input() or x.is_graph_output()):
            return False
        replace_value(out, x)
        graph.remove(sq, safe=True)
        remove_if_dead(graph, p)
        return True
    if is_op(p, "Transpose"):
        u = p.inputs[0].producer()
        perm = attr(p, "perm")
        if not is_op(u, "Unsqueeze") or perm is None:
            return False
        a = _axes(u)
        r = len(perm)
        if a is None or len(a) != 1:
            return False
        a0, b0 = _norm(a, r)[0], _norm(b, r)[0]
        if perm[b0] != a0:
            return False
        new = [q if q < a0 else q - 1 for i, q in enumerate(perm) if i != b0]
        x = u.inputs[0]
        if new == list(range(len(new))):
            if out.is_graph_output() and (x.is_graph_input() or x.is_graph_output()):
                return False
            replace_value(out, x)
        else:
            t = ir.Node("", "Transpose", [x], attributes=[ir.AttrInt64s("perm", new)],
                        name=f"{sq.name or 'squeeze'}_transpose", num_outputs=1)
            graph.insert_before(sq, t)
            if out.dtype is not None:
                t.outputs[0].dtype = out.dtype
            t.outputs[0].shape = out.shape
            replace_value(out, t.outputs[0])
        graph.remove(sq, safe=True)
        remove_if_dead(graph, p)
        remove_if_dead(graph, u)
        return True
    return False


def conv2d_to_conv1d(model: ir.Model) -> PassResult:
    graph = model.graph
    changed = False
    for node in list(graph):
        if node.graph is graph and is_op(node, "Conv", *_POOLS):
            changed |= _to_1d(graph, node)
    again = True
    while again:
        again = False
        for node in list(graph):
            if node.graph is graph and is_op(node, "Squeeze") and _cancel(graph, node):
                again = changed = True
    return PassResult(model, changed)
