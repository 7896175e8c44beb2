"""Declared shapes of values that control flow carries are hints, not facts.

A Loop's carried value may change shape from one iteration to the next: exporters type it after
its initial value (torchvision's Mask R-CNN pastes masks onto a tensor declared ``[0, 320, 320]``
that grows by one mask per iteration), and an If's output takes the shape of whichever branch
ran.  Rewrites that trust such a declaration are silently wrong (onnxscript's folder drops a
Concat input whose declared length is 0, Shape folds to the declared dims).  Before any pass
runs, this one keeps a dim of such a value only where every declaration agrees on it:

- Loop carried value: the initial value (its real shape when constant), the body input and the
  body output agree on a positive size; a 0 is never kept (an empty carried tensor is the
  accumulator pattern).  The same relaxed shape goes on the Loop's final output; scan outputs
  get an unknown leading dim.
- If output: both branches and the declared outer output agree.

Every value computed from a relaxed one (in the same graph or a nested one) loses its declared
shape; shape inference derives it again from the relaxed facts.
"""
from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import PassResult


def _dims(v: ir.Value | None) -> list | None:
    if v is None:
        return None
    if v.const_value is not None:
        return [int(d) for d in v.const_value.shape]
    if v.shape is None:
        return None
    return list(v.shape.dims)


def _agree(shapes: list, *, keep_zero: bool) -> ir.Shape | None:
    """The dims on which every shape agrees, unknown elsewhere; the rank where the known shapes
    agree on it, else None."""
    known = [s for s in shapes if s is not None]
    if not known or len({len(s) for s in known}) != 1:
        return None
    if len(known) < len(shapes):
        return ir.Shape([None] * len(known[0]))
    dims = []
    for column in zip(*known):
        d = column[0]
        ok = all(isinstance(c, int) and c == d for c in column) and (d > 0 or keep_zero)
        dims.append(d if ok else None)
    return ir.Shape(dims)


def _same(a: ir.Shape | None, b: ir.Shape | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return list(a.dims) == list(b.dims)


def _set(v: ir.Value | None, shape: ir.Shape | None, changed: list) -> None:
    if v is None or v.const_value is not None or _same(v.shape, shape):
        return
    v.shape = shape
    changed.append(v)


def _graph_attr(node: ir.Node, name: str) -> ir.Graph | None:
    a = node.attributes.get(name)
    return a.value if a is not None and a.type == ir.AttributeType.GRAPH else None


def _relax_loop(node: ir.Node, changed: list) -> None:
    body = _graph_attr(node, "body")
    if body is None:
        return
    n_carried = len(node.inputs) - 2
    if n_carried < 0 or len(body.inputs) != n_carried + 2 or len(body.outputs) < n_carried + 1:
        return  # malformed: the emitter reports it
    for k in range(n_carried):
        init, b_in, b_out = node.inputs[2 + k], body.inputs[2 + k], body.outputs[1 + k]
        shape = _agree([_dims(init), _dims(b_in), _dims(b_out)], keep_zero=False)
        _set(b_in, shape, changed)
        _set(b_out, shape, changed)
        if k < len(node.outputs):
            _set(node.outputs[k], shape, changed)
    for j, b_scan in enumerate(body.outputs[1 + n_carried:]):
        if n_carried + j >= len(node.outputs):
            break
        inner = _dims(b_scan)
        _set(node.outputs[n_carried + j],
             None if inner is None else ir.Shape([None, *inner]), changed)


def _relax_if(node: ir.Node, changed: list) -> None:
    then_g, else_g = _graph_attr(node, "then_branch"), _graph_attr(node, "else_branch")
    if then_g is None or else_g is None:
        return
    for i, out in enumerate(node.outputs):
        if i >= len(then_g.outputs) or i >= len(else_g.outputs):
            break
        _set(out, _agree([_dims(then_g.outputs[i]), _dims(else_g.outputs[i]), _dims(out)],
                         keep_zero=True), changed)


def _walk(graph: ir.Graph, changed: list) -> None:
    for node in graph:
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                _walk(attr.value, changed)
            elif attr.type == ir.AttributeType.GRAPHS:
                for g in attr.value:
                    _walk(g, changed)
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Loop":
            _relax_loop(node, changed)
        elif node.op_type == "If":
            _relax_if(node, changed)


def _forget_downstream(relaxed: list) -> None:
    """Values computed from a relaxed value drop their declared shapes (transitively)."""
    seen = {id(v) for v in relaxed}
    stack = list(relaxed)
    while stack:
        v = stack.pop()
        for use, idx in v.uses():
            outs = list(use.outputs)
            if use.op_type == "Loop" and idx >= 2:
                body = _graph_attr(use, "body")
                if body is not None and idx < len(body.inputs):
                    outs.append(body.inputs[idx])
            for out in outs:
                if id(out) in seen or out.const_value is not None:
                    continue
                seen.add(id(out))
                if out.shape is not None:
                    out.shape = None
                stack.append(out)


def relax_subgraph_shapes(model: ir.Model) -> PassResult:
    """Relax declared shapes of loop-carried values and If outputs (in place)."""
    any_change = False
    for _ in range(8):  # shapes only lose information: a few rounds reach the fixed point
        changed: list = []
        _walk(model.graph, changed)
        if not changed:
            break
        any_change = True
        _forget_downstream(changed)
    return PassResult(model, any_change)
