"""Extract the subgraph between named tensors as a runnable model."""
from __future__ import annotations

import difflib
import os

import onnx_ir as ir
from onnx_ir.passes import common as ir_common

from ..errors import InputError
from ..io import ModelProto, ModelSource, check_output_path, load_model, owned_proto, save_model
from ..passes.normalize.shapes import infer_shapes


def all_values(graph: ir.Graph) -> dict[str, ir.Value]:
    """Every named tensor of the main graph: inputs, initializers, node outputs."""
    out: dict[str, ir.Value] = {}
    for v in graph.inputs:
        if v.name:
            out[v.name] = v
    for name, v in graph.initializers.items():
        out.setdefault(name, v)
    for node in graph:
        for v in node.outputs:
            if v.name:
                out[v.name] = v
    return out


def unknown_name_error(kind: str, name: str, known) -> InputError:
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return InputError(f"{kind} {name!r}: the model has no tensor of that name{hint}")


def _split(names) -> list[str]:
    if isinstance(names, str):
        names = names.split(",")
    return [n.strip() for n in names if n and n.strip()]


def extract(src: ModelSource, dst: str | os.PathLike | None = None, *, inputs, outputs
            ) -> ModelProto:
    """The part of ``src`` that computes ``outputs`` from ``inputs`` (tensor names, lists or
    comma-separated strings), with the original weights.  Writes ``dst`` atomically if given."""
    ins, outs = _split(inputs), _split(outputs)
    if not outs:
        raise InputError("--outputs: give at least one tensor name")
    if dst is not None:
        check_output_path(dst)
    proto = owned_proto(src)
    model = load_model(proto)
    try:
        ir_common.RemoveInitializersFromInputsPass()(model)
    except Exception:
        pass
    infer_shapes(model)
    graph = model.graph
    values = all_values(graph)
    for n in ins:
        if n not in values:
            raise unknown_name_error("--inputs", n, values)
    for n in outs:
        if n not in values:
            raise unknown_name_error("--outputs", n, values)
    original_inputs = [v for v in graph.inputs]
    new_inputs = []
    for n in ins:
        v = values[n]
        if v.is_graph_input():
            new_inputs.append(v)
            continue
        if v.type is None:
            raise InputError(f"--inputs {n!r}: its type is not known (shape inference could "
                             "not find it); cannot make it a model input")
        fresh = ir.Value(name=None, type=v.type, shape=v.shape)
        # a tensor that is also a graph output: the graph output becomes the new input too
        v.replace_all_uses_with(fresh, replace_graph_outputs=True)
        if v.const_value is not None and n in graph.initializers:
            graph.initializers.pop(n)
        v.name = f"{n}__extract_replaced"
        fresh.name = n
        new_inputs.append(fresh)
    new_outputs = []
    for n in outs:
        v = next((x for x in new_inputs if x.name == n), None) or values[n]
        new_outputs.append(v)
    graph.outputs.clear()
    graph.outputs.extend(new_outputs)
    graph.inputs.clear()
    graph.inputs.extend(new_inputs)
    ir_common.RemoveUnusedNodesPass()(model)
    missing = [v.name for v in original_inputs
               if v not in new_inputs and (v.uses() or v.is_graph_output())]
    if missing:
        raise InputError(f"--outputs {','.join(outs)} depend(s) on model input(s) "
                         f"{', '.join(repr(m) for m in missing)} that are not in --inputs; "
                         "add them to --inputs")
    ir_common.RemoveUnusedFunctionsPass()(model)
    ir_common.TopologicalSortPass()(model)
    result = ir.to_proto(model)
    if dst is not None:
        save_model(result, dst)
    return result
