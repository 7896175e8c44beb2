"""Edit a model: rename tensors/nodes, change input shapes, convert the opset, expose outputs."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import onnx_ir as ir

from ..errors import InputError, NnportError
from ..io import (ModelProto, ModelSource, check_lean_model, check_output_path,
                  convert_version, describe, from_proto, load_model, owned_proto, save_model,
                  to_proto_inline)
from ..passes.normalize.shapes import infer_shapes
from .extract import all_values, unknown_name_error
from .simplify import fix_input_shapes


@dataclass
class EditResult:
    edited: ir.Model  # large weights may still point into the source file
    notes: list = field(default_factory=list)
    report: object | None = None  # VerifyReport of the opset conversion

    @property
    def model(self) -> ModelProto:
        """The edited model as a self-contained ModelProto (weights read in)."""
        return to_proto_inline(self.edited)

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok


def _parse_rename(item) -> tuple[str, str]:
    if isinstance(item, tuple):
        return item
    if "=" not in item:
        raise InputError(f"--rename {item!r}: expected OLD=NEW")
    old, new = item.split("=", 1)
    if not old or not new:
        raise InputError(f"--rename {item!r}: expected OLD=NEW with both names non-empty")
    return old, new


def _all_nodes(graph: ir.Graph):
    return list(graph)


def edit(src: ModelSource, dst: str | os.PathLike | None = None, *, rename=(),
         input_shapes: dict | None = None, opset: int | None = None, outputs=(),
         verify: bool = True, seed: int = 0, rtol: float | None = None,
         atol: float | None = None) -> EditResult:
    """Apply the edits in this order: expose ``outputs``, set ``input_shapes`` (None dims become
    symbolic), convert to ``opset`` (verified against the model before conversion), ``rename``.
    All names refer to the input model.  Writes ``dst`` atomically when given and the opset
    conversion (if any) verified."""
    if dst is not None:
        check_output_path(dst)
    # a path is read lean: its large weights stay in the file and are written from there
    model = (load_model(src, lazy=True) if isinstance(src, (str, os.PathLike))
             else load_model(owned_proto(src)))
    notes = []
    renames = [_parse_rename(r) for r in rename]
    infer_shapes(model)
    graph = model.graph
    values = all_values(graph)
    nodes = {n.name: n for n in _all_nodes(graph) if n.name}
    # validate every name before changing anything
    for name in outputs:
        if name not in values:
            raise unknown_name_error("--output", name, values)
    for old, new in renames:
        if old not in values and old not in nodes:
            raise unknown_name_error("--rename", old, list(values) + list(nodes))
    for name in outputs:
        v = values[name]
        if not v.is_graph_output():
            graph.outputs.append(v)
            notes.append(f"exposed {name!r} as a graph output")
    if input_shapes:
        fix_input_shapes(model, input_shapes, symbolic=True)
        for node in graph:
            for out in node.outputs:
                out.shape = None  # re-infer every shape, outputs included
        infer_shapes(model)
        notes.append("input shapes set: " + ", ".join(
            f"{k}=[{','.join('?' if d is None else str(d) for d in v)}]"
            for k, v in input_shapes.items()))
    report = None
    if opset is not None:
        try:
            result_proto = to_proto_inline(model)
        except InputError as exc:
            raise InputError(f"{describe(src)}: {exc}") from None
        have = next((o.version for o in result_proto.opset_import if o.domain in ("", "ai.onnx")),
                    None)
        try:
            converted = convert_version(result_proto, int(opset))
        except Exception as exc:
            raise InputError(f"--opset {opset}: onnx's version converter cannot convert this "
                             f"model from opset {have}: {' '.join(str(exc).split())[:300]}"
                             ) from None
        if verify:
            from ..verify import verify as run_verify

            report = run_verify(result_proto, converted, input_shapes=input_shapes, seed=seed,
                                rtol=rtol, atol=atol)
            report.a = f"{src} (opset {have})" if isinstance(src, (str, os.PathLike)) else report.a
            report.b = f"opset {opset}"
        notes.append(f"converted from opset {have} to {opset}")
        del result_proto
        model = from_proto(converted)
        del converted
    if renames:
        graph = model.graph
        values = all_values(graph)
        nodes = {n.name: n for n in graph if n.name}
        for old, new in renames:
            done = False
            if old in values:
                if new in values and values[new] is not values[old]:
                    raise InputError(f"--rename {old}={new}: a tensor named {new!r} already "
                                     "exists")
                v = values.pop(old)
                if v.const_value is not None and old in graph.initializers:
                    graph.initializers.pop(old)
                    v.name = new
                    v.const_value.name = new
                    graph.register_initializer(v)
                else:
                    v.name = new
                values[new] = v
                done = True
                notes.append(f"renamed tensor {old!r} to {new!r}")
            if old in nodes:
                if new in nodes and nodes[new] is not nodes[old]:
                    raise InputError(f"--rename {old}={new}: a node named {new!r} already exists")
                nodes[old].name = new
                nodes[new] = nodes.pop(old)
                done = True
                notes.append(f"renamed node {old!r} to {new!r}")
            if not done:
                raise unknown_name_error("--rename", old, list(values) + list(nodes))
    try:  # the checker reads the graph, not the weights: tensors in the file stay there
        check_lean_model(model)
    except Exception as exc:
        raise InputError(f"the edited model is not valid ONNX: "
                         f"{' '.join(str(exc).split())[:300]}") from None
    result = EditResult(model, notes, report)
    if dst is not None and result.ok:
        save_model(model, dst)
    return result


__all__ = ["edit", "EditResult", "NnportError"]
