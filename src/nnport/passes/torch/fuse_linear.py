"""MatMul by a constant matrix, with or without a following Add of a constant vector ->
``nnport::Linear``.

Exporters write ``nn.Linear`` on a >2-D input as MatMul + Add; printed back as two ops it costs
an extra pass over the activations.  The fused node prints as an ``nn.Linear`` submodule
(one addmm), named after the bias (``encoder.layer.0.fc1.bias`` -> ``encoder_layer_0_fc1``).
"""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import PassResult

from ..match import DOMAIN, FLOATS, finish, is_op, only_use, other, replace_output


def _match(mm: ir.Node):
    x, w = mm.inputs[0], mm.inputs[1] if len(mm.inputs) > 1 else None
    if x is None or w is None or w.const_value is None or x.const_value is not None:
        return None
    wt = w.const_value
    if len(wt.shape) != 2 or wt.dtype not in FLOATS or x.dtype != wt.dtype:
        return None
    if x.shape is None or len(x.shape) < 2:
        return None
    out = mm.outputs[0]
    users = list(out.uses())
    if len(users) != 1 or out.is_graph_output():
        return x, w, None, mm  # no bias: nn.Linear(..., bias=False)
    add = users[0][0]
    if not is_op(add, "Add"):
        return x, w, None, mm
    b = other(add, out)
    if b is None or b.const_value is None or b.const_value.dtype != wt.dtype:
        return x, w, None, mm
    bshape = tuple(b.const_value.shape.numpy())
    n = int(wt.shape[1])
    if bshape not in ((n,), (1, n)) or not only_use(out, add):
        return x, w, None, mm
    return x, w, b, add


def fuse_linear(model: ir.Model) -> PassResult:
    """Rewrite every MatMul(x, const W) [+ const bias] of the main graph."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if not is_op(node, "MatMul") or node.graph is None:
            continue
        m = _match(node)
        if m is None:
            continue
        x, w, b, add = m
        fused = ir.Node(DOMAIN, "Linear", [x, w] + ([b] if b is not None else []),
                        name=node.name or "linear")
        fused.metadata_props.update(node.metadata_props)  # its module scope (torch_emit/tree.py)
        replace_output(graph, add, fused)
        count += 1
    return finish(model, count)
