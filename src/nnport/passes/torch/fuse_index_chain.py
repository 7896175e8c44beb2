"""A chain of Reshape / Slice / Transpose nodes that only reorders a short 1-D integer tensor
becomes one ``Gather`` with constant indices (PyTorch target only).

The TorchScript exporter writes ``F.pad``'s pads as the list reshaped to (-1, 2), flipped
along axis 0, transposed and flattened: ONNX's begin/end order from torch's per-axis pairs.
When the list holds shape arithmetic (Swin's ``(7 - H % 7) % 7``), the emitter's symbolic
shape tracking (torch_emit/symbolic.py) follows 1-D values only, so the list became a tensor
at the first Reshape: ``torch.tensor([...]).reshape(-1, 2).flip(0).permute(1, 0)
.reshape(-1)``, read back with ``.tolist()``, which ``torch.export`` cannot trace.  As one
Gather of the 1-D list it stays a list of Python ints.

The chain starts at a Reshape of a 1-D integer tensor of static length (at most 64) and ends
at the last node whose output is 1-D again; every node has constant parameters and every
intermediate feeds only the next node.  The indices are the chain applied to
``arange(n)``.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array
from ..match import finish, is_op, replace_output, single_user

_INTS = (ir.DataType.INT64, ir.DataType.INT32)
_MAX_LEN = 64


def _const(node: ir.Node, i: int) -> np.ndarray | None:
    return const_array(node.inputs[i]) if i < len(node.inputs) else None


def _apply(node: ir.Node, arr: np.ndarray) -> np.ndarray | None:
    """``arr`` (indices) moved as ``node`` moves its input's elements; None when the node is
    not a Reshape/Slice/Transpose with constant parameters."""
    if is_op(node, "Reshape"):
        shape = _const(node, 1)
        if shape is None or shape.ndim != 1:
            return None
        allowzero = node.attributes.get("allowzero")
        dims = [int(d) for d in shape]
        if not (allowzero is not None and allowzero.as_int()):
            dims = [arr.shape[i] if d == 0 and i < arr.ndim else d for i, d in enumerate(dims)]
        try:
            return arr.reshape(dims)
        except ValueError:
            return None
    if is_op(node, "Transpose"):
        perm = node.attributes.get("perm")
        perm = list(perm.as_ints()) if perm is not None else list(range(arr.ndim))[::-1]
        return arr.transpose(perm) if sorted(perm) == list(range(arr.ndim)) else None
    if is_op(node, "Slice") and len(node.inputs) >= 3:
        starts, ends = _const(node, 1), _const(node, 2)
        axes = _const(node, 3) if len(node.inputs) > 3 and node.inputs[3] is not None else None
        steps = _const(node, 4) if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if starts is None or ends is None or (len(node.inputs) > 3 and node.inputs[3] is not None
                                              and axes is None) \
                or (len(node.inputs) > 4 and node.inputs[4] is not None and steps is None):
            return None
        axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
        index = [slice(None)] * arr.ndim
        for a, b, e, s in zip(axes, starts, ends, steps):
            if s == 0 or not -arr.ndim <= a < arr.ndim:
                return None
            # Python's slice clamps out-of-range starts and ends as ONNX's Slice does
            index[a] = slice(int(b), int(e), s)
        return arr[tuple(index)]
    return None


def _chain_end(start: ir.Node, n: int) -> tuple[ir.Node, np.ndarray] | None:
    arr, node, best = np.arange(n), start, None
    while True:
        arr = _apply(node, arr)
        if arr is None:
            return best
        if arr.ndim == 1 and node is not start:
            best = (node, arr)
        node = single_user(node.outputs[0])
        if node is None:
            return best


def fuse_index_chains(model: ir.Model) -> PassResult:
    """Rewrite every such chain in the main graph as one Gather."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not is_op(node, "Reshape") or node.graph is None:
            continue
        x = node.inputs[0]
        if x is None or x.dtype not in _INTS or x.shape is None or len(x.shape) != 1 \
                or not isinstance(x.shape[0], int) or not 0 < x.shape[0] <= _MAX_LEN:
            continue
        found = _chain_end(node, x.shape[0])
        if found is None:
            continue
        last, indices = found
        name = f"{last.name or 'index_chain'}_indices"
        if name in graph.initializers:
            name = f"{name}_{count}"
        idx = ir.Value(name=name, const_value=ir.tensor(indices.astype(np.int64), name=name),
                       shape=ir.Shape(indices.shape), type=ir.TensorType(ir.DataType.INT64))
        graph.register_initializer(idx)
        gather = ir.Node("", "Gather", [x, idx], attributes=[ir.AttrInt64("axis", 0)],
                         name=(last.name or "index_chain") + "_gather")
        replace_output(graph, last, gather)
        count += 1
    return finish(model, count)
