"""Remove nodes that compute nothing: Identity, inference Dropout, Cast to the same type, Reshape/
Expand to the shape the input already has, Transpose by the identity permutation, Pad by zeros,
Slice over the whole tensor, Squeeze/Unsqueeze with no axes, single-input Concat/Sum/Max/Min/Mean.

Each check uses only facts known statically (constant inputs, inferred shapes and dtypes); a node
whose facts are unknown is left alone.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array, replace_value

_INT64_MAX = np.iinfo(np.int64).max


def _static_shape(v: ir.Value | None) -> tuple | None:
    if v is None:
        return None
    if v.const_value is not None:
        return tuple(v.const_value.shape.numpy())
    if v.shape is None or not all(isinstance(d, int) for d in v.shape.dims):
        return None
    return tuple(v.shape.dims)


def _dtype(v: ir.Value | None):
    if v is None:
        return None
    if v.const_value is not None:
        return v.const_value.dtype
    return v.dtype


def _attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def _only_first_output_used(node: ir.Node) -> bool:
    return all(not o.uses() and not o.is_graph_output() for o in node.outputs[1:])


def _is_noop(node: ir.Node) -> bool:
    if node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] is None:
        return False
    op = node.op_type
    x = node.inputs[0]
    if op == "Identity":
        return True
    if op == "Dropout":
        training = const_array(node.inputs[2]) if len(node.inputs) > 2 else None
        if len(node.inputs) > 2 and node.inputs[2] is not None and (
                training is None or bool(training)):
            return False
        return _only_first_output_used(node)
    if op == "Cast":
        to = _attr(node, "to")
        dt = _dtype(x)
        return dt is not None and to is not None and int(dt) == int(to)
    if op == "Expand" and len(node.inputs) > 1:
        target = const_array(node.inputs[1])
        dims = list(x.shape.dims) if x.shape is not None else None
        if x.const_value is not None:
            dims = list(x.const_value.shape.numpy())
        if target is None or dims is None or len(target.reshape(-1)) > len(dims):
            return False
        tail = dims[len(dims) - len(target.reshape(-1)):]
        return all(int(t) == 1 or (isinstance(s, int) and int(t) == s)
                   for t, s in zip(target.reshape(-1), tail))
    if op == "Reshape":
        target = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
        shape = _static_shape(x)
        if target is None or shape is None:
            return False
        target = tuple(int(t) for t in target.reshape(-1))
        allowzero = _attr(node, "allowzero", 0)
        resolved = tuple(shape[i] if t == 0 and not allowzero and i < len(shape) else t
                         for i, t in enumerate(target))
        if resolved.count(-1) == 1 and all(d > 0 for d in shape):
            known = int(np.prod([d for d in resolved if d != -1]))
            if known:
                resolved = tuple(int(np.prod(shape)) // known if d == -1 else d
                                 for d in resolved)
        return resolved == shape
    if op == "Transpose":
        perm = _attr(node, "perm")
        if perm is None:
            shape = _static_shape(x)
            return shape is not None and len(shape) <= 1
        return list(perm) == list(range(len(perm)))
    if op == "Pad":
        if len(node.inputs) > 1:
            pads = const_array(node.inputs[1])
        else:
            pads = _attr(node, "pads")
            pads = None if pads is None else np.asarray(pads)
        return pads is not None and not np.any(pads)
    if op == "Slice":
        shape = _static_shape(x)
        if len(node.inputs) < 3 or shape is None:
            return False
        starts, ends = const_array(node.inputs[1]), const_array(node.inputs[2])
        axes = const_array(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None \
            else None
        steps = const_array(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None \
            else None
        if starts is None or ends is None or (len(node.inputs) > 3 and node.inputs[3] is not None
                                               and axes is None) or (
                len(node.inputs) > 4 and node.inputs[4] is not None and steps is None):
            return False
        n = len(starts)
        axes = range(n) if axes is None else axes
        steps = [1] * n if steps is None else steps
        for s, e, a, st in zip(starts, ends, axes, steps):
            if not -len(shape) <= int(a) < len(shape):
                return False  # an invalid axis: the emitter reports it by name
            dim = shape[int(a)]
            if int(st) != 1 or not (int(s) == 0 or int(s) <= -dim) or int(e) < dim:
                return False
        return True
    if op in ("Squeeze", "Unsqueeze"):
        axes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None \
            else _attr(node, "axes")
        if axes is None:
            return op == "Squeeze" and (_static_shape(x) is not None
                                        and 1 not in _static_shape(x))
        return len(np.asarray(axes).reshape(-1)) == 0
    if op in ("Concat", "Sum", "Max", "Min", "Mean") and len(node.inputs) == 1:
        return True
    return False


def eliminate_noops(model: ir.Model) -> PassResult:
    """Bypass no-op nodes in the main graph."""
    graph = model.graph
    changed = False
    for node in list(graph):
        if not _is_noop(node):
            continue
        x, y = node.inputs[0], node.outputs[0]
        if y.is_graph_output() and (x.is_graph_input() or x.is_graph_output()
                                    or x.const_value is not None):
            continue  # keep the node: it gives the graph output its own name
        replace_value(y, x)  # a graph output's name moves to the producer's output
        graph.remove(node, safe=True)
        changed = True
    return PassResult(model, changed)
