"""TensorFlow/Keras -> ONNX (tf2onnx), then the clean-ups that make the graph NCHW inside."""
from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import onnx_ir as ir

from ..errors import ConversionError, InputError
from ..io import ModelProto
from .tfmodel import _one_line, import_tf, load_tf_model

OPSET = 17


def _to_onnx(m) -> ModelProto:
    tf, tf2onnx = import_tf(m.path)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    specs = m.tensor_specs()
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            if m.kind == "keras":
                proto, _ = tf2onnx.convert.from_keras(m.obj, input_signature=specs, opset=OPSET)
            else:
                keys, outs = m._sig_keys, m.output_names
                sig = m.obj

                @tf.function(input_signature=specs)
                def serve(*args):
                    res = sig(**dict(zip(keys, args)))
                    return [res[k] for k in outs]

                proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs,
                                                         opset=OPSET)
    except InputError:
        raise
    except Exception as exc:
        raise ConversionError(f"{m.path}: tf2onnx could not convert the model "
                              f"({_one_line(exc)})") from None
    return proto


def _rename_io(model: ir.Model, m) -> None:
    """Graph inputs/outputs carry the TensorFlow model's names (the runner uses the same)."""
    ins = [v for v in model.graph.inputs if v.name not in model.graph.initializers]
    if len(ins) == len(m.input_names):
        for v, n in zip(ins, m.input_names):
            v.name = n
    if len(model.graph.outputs) == len(m.output_names):
        taken = {v.name for v in model.graph.inputs}
        for v, n in zip(model.graph.outputs, m.output_names):
            if n not in taken and v not in model.graph.inputs:
                v.name = n


def _tidy_names(model: ir.Model) -> None:
    """Drop the model's own scope ("functional_1/", "mobilenetv2_1.00_96_1/") and TensorFlow's
    ":0" from node and intermediate value names, so the generated code names read like layers."""
    from collections import Counter

    nodes = list(model.graph)
    firsts = Counter(n.name.split("/", 1)[0] for n in nodes if n.name and "/" in n.name)
    scope = firsts.most_common(1)[0][0] + "/" if firsts else None

    def tidy(name: str) -> str:
        if scope and name.startswith(scope) and len(name) > len(scope):
            name = name[len(scope):]
        return name[:-2] if name.endswith(":0") else name

    used = {n.name for n in nodes if n.name}
    for n in nodes:
        if n.name and tidy(n.name) != n.name and tidy(n.name) not in used:
            used.add(tidy(n.name))
            n.name = tidy(n.name)
    keep = {v.name for v in model.graph.inputs} | {v.name for v in model.graph.outputs} | \
        set(model.graph.initializers)
    used = set(keep) | {o.name for n in nodes for o in n.outputs if o.name}
    for n in nodes:
        for o in n.outputs:
            if o.name and o.name not in keep and not o.is_graph_output():
                new = tidy(o.name)
                if new != o.name and new not in used:
                    used.add(new)
                    o.name = new


def _inputs_to_nchw(model: ir.Model) -> None:
    """Rank-4/5 float inputs become channels-first; a Transpose gives the graph its NHWC."""
    graph = model.graph
    for v in list(graph.inputs):
        if v.shape is None or len(v.shape) not in (4, 5) or v.dtype is None or \
                not v.dtype.is_floating_point():
            continue
        rank = len(v.shape)
        to_last = [0] + list(range(2, rank)) + [1]  # NCHW -> NHWC
        t = ir.Node("", "Transpose", [v], attributes=[ir.AttrInt64s("perm", to_last)],
                    name=f"{v.name}_to_nhwc", num_outputs=1)
        nhwc = v.shape
        t.outputs[0].dtype = v.dtype
        t.outputs[0].shape = ir.Shape(list(nhwc.dims))
        for user, idx in list(v.uses()):
            if user is not t:
                user.replace_input_with(idx, t.outputs[0])
        graph.insert_before(graph.node(0), t) if len(graph) else graph.append(t)
        dims = list(nhwc.dims)
        v.shape = ir.Shape([dims[0], dims[-1]] + dims[1:-1])


def clean_layout(model: ir.Model) -> ir.Model:
    """The layout passes, in order: Keras RNN loops -> ONNX RNN nodes, Pad into Conv, Mul/Add
    into Conv, Transposes pushed down and cancelled."""
    from onnx_ir.passes import common as ir_common

    from ..passes.base import run_passes
    from ..passes.tf_layout import FIRST, ROUND, ROUNDS

    run_passes(model, [*FIRST, ir_common.RemoveUnusedNodesPass()])
    run_passes(model, ROUND, rounds=ROUNDS)
    run_passes(model, [ir_common.RemoveUnusedNodesPass(), ir_common.TopologicalSortPass()])
    return model


def load_onnx(path: Path, *, nchw: bool = False) -> ModelProto:
    """A TensorFlow/Keras model as ONNX (opset 17), NHWC inputs unless ``nchw``."""
    m = load_tf_model(path)
    proto = _to_onnx(m)
    try:
        model = ir.from_proto(proto)
    except Exception as exc:
        raise ConversionError(f"{path}: tf2onnx produced an unreadable model "
                              f"({_one_line(exc)})") from None
    _rename_io(model, m)
    if nchw:
        _inputs_to_nchw(model)
    clean_layout(model)
    _tidy_names(model)
    model.graph.name = Path(path).stem or "model"
    out = ir.to_proto(model)
    return out
