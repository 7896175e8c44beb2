"""``nnport inspect``: what a model is, and everything that would not convert."""
from __future__ import annotations

import collections
import os

import numpy as np
import onnx_ir as ir

from .errors import InputError, NnportError
from .io import (ModelSource, describe, inference_error_lines, load_model, load_proto,
                 shape_problems)


def _dims(v: ir.Value) -> list | None:
    if v.shape is None:
        return None
    return [d if isinstance(d, int) else (d.value if d.value is not None else "?")
            for d in v.shape.dims]


def _type_name(v: ir.Value) -> str:
    if v.type is None:
        return "unknown"
    if isinstance(v.type, ir.TensorType):
        return v.dtype.name.lower()
    return str(v.type)


def inspect_model(src: ModelSource, target: str = "torch") -> dict:
    from .convert import prepare
    from .torch_emit import REGISTRY
    from .irutil import iter_nodes, model_text
    from .torch_emit.emitter import preflight

    raw = load_model(src, lazy=True)  # describing reads no weight
    inits = set(raw.graph.initializers)
    info = {
        "model": describe(src),
        "ir_version": raw.ir_version,
        "producer": " ".join(filter(None, [model_text(raw.producer_name),
                                           model_text(raw.producer_version)])),
        "opsets": {(d or "ai.onnx"): v for d, v in sorted(raw.opset_imports.items())},
        "inputs": [{"name": v.name, "dtype": _type_name(v), "shape": _dims(v)}
                   for v in raw.graph.inputs if v.name not in inits],
        "outputs": [{"name": v.name, "dtype": _type_name(v), "shape": _dims(v)}
                    for v in raw.graph.outputs],
    }
    counts = collections.Counter()
    by_domain = collections.Counter()  # ai.onnx, com.microsoft (onnxruntime), ai.onnx.ml ...
    n_nodes = 0
    for node, _ in iter_nodes(raw.graph):
        n_nodes += 1
        by_domain[node.domain if node.domain not in ("", "ai.onnx") else "ai.onnx"] += 1
        counts[f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx")
               else node.op_type] += 1
    info["nodes"] = n_nodes
    info["nodes_by_domain"] = dict(sorted(by_domain.items(),
                                          key=lambda kv: (kv[0] != "ai.onnx", kv[0])))
    info["ops"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    n_params = n_bytes = 0
    for v in raw.graph.initializers.values():
        t = v.const_value
        if t is None:
            continue
        size = int(np.prod(t.shape.numpy())) if len(t.shape) else 1
        n_params += size
        try:
            n_bytes += t.nbytes if hasattr(t, "nbytes") else size * t.dtype.itemsize
        except Exception:
            raise InputError(f"{describe(src)}: initializer {v.name!r} has an invalid element "
                             f"type ({t.dtype})") from None
    info["parameters"] = n_params
    info["parameter_bytes"] = int(n_bytes)
    # A broken model is what people inspect: every inconsistency is one line in "problems",
    # and the rest is still described.
    from .passes.normalize.shapes import SHAPE_FAILURE_KEY

    # onnx's strict inference reads the graph, not the weights: parse the file without its
    # large tensors (references into the file instead) so inspecting costs no copy of them
    from .io import load_skeleton

    lean = load_skeleton(src) if isinstance(src, (str, os.PathLike)) else None
    problems = shape_problems(lean if lean is not None else load_proto(src))
    del lean
    info["target"] = target
    info["unsupported"] = None
    try:
        model = prepare(src)
    except NnportError as exc:
        problems.append(f"cannot prepare the model for conversion: {exc}")
    else:
        failed = model.meta.get(SHAPE_FAILURE_KEY)
        if failed and not problems:
            problems += [f"shape inference (after normalizing): {p}"
                         for p in inference_error_lines(failed)]
        if target == "ncnn":
            from .ncnn_emit.preflight import unsupported

            info["unsupported"] = unsupported(model)
        else:
            info["unsupported"] = preflight(model, REGISTRY)
    info["problems"] = problems
    return info


def format_report(info: dict) -> list[str]:
    def shape(s):
        return "?" if s is None else "[" + ", ".join(str(d) for d in s) + "]"

    lines = [f"model: {info['model']}",
             f"ir_version: {info['ir_version']}  opsets: " +
             ", ".join(f"{d} {v}" for d, v in info["opsets"].items()),
             f"producer: {info['producer'] or '-'}", "inputs:"]
    lines += [f"  {i['name']}: {i['dtype']} {shape(i['shape'])}" for i in info["inputs"]]
    lines.append("outputs:")
    lines += [f"  {o['name']}: {o['dtype']} {shape(o['shape'])}" for o in info["outputs"]]
    lines.append(f"parameters: {info['parameters']:,} ({info['parameter_bytes'] / 1e6:.2f} MB)")
    doms = info.get("nodes_by_domain") or {}
    split = f" ({', '.join(f'{d} {n}' for d, n in doms.items())})" if len(doms) > 1 else ""
    lines.append(f"nodes: {info['nodes']}{split}")
    lines += [f"  {op}: {n}" for op, n in info["ops"].items()]
    problems = info.get("problems") or []
    if problems:
        lines.append(f"problems: {len(problems)}")
        lines += [f"  {p}" for p in problems]
    bad = info["unsupported"]
    if bad is None:
        lines.append(f"pre-flight for {info['target']}: not run (see problems)")
    elif bad:
        lines.append(f"cannot convert to {info['target']}: {len(bad)} node(s)")
        lines += [f"  {b['domain'] or 'ai.onnx'}::{b['op_type']} (opset {b['opset']}): {b['node']!r}"
                  + (f" ({b['why']})" if b.get("why") else "") for b in bad]
    else:
        lines.append(f"pre-flight for {info['target']}: every node converts")
    return lines
