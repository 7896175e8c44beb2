"""Run two implementations of a model on the same inputs and compare their outputs."""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir

from .. import formats
from ..errors import InputError
from ..io import ModelProto, describe, load_model
from .compare import VerifyReport, compare_arrays, default_tolerance
from .inputs import InputSpec, random_inputs, resolve_shapes, specs_from_model
from .ort import OrtRunner

__all__ = ["verify", "Deferred", "VerifyReport", "compare_arrays", "default_tolerance"]


class Deferred:
    """A side of ``verify`` that is made (``make()``: any side ``verify`` takes) only when its
    turn comes, after the other side has run and been let go: a conversion that verifies what
    it made never holds onnxruntime's copy of the weights and its own at once."""

    def __init__(self, make, name: str):
        self.make = make
        self.name = name


def _name(src) -> str:
    return src.name if isinstance(src, Deferred) else describe(src)


def _kind(src) -> str:
    if isinstance(src, Deferred):
        return "deferred"
    if isinstance(src, (ModelProto, ir.Model)):
        return "onnx"
    torch = sys.modules.get("torch")  # a module object means torch is imported already
    if torch is not None and isinstance(src, torch.nn.Module):
        return "torch"
    if isinstance(src, (str, os.PathLike)):
        suffix = Path(src).suffix.lower()
        if suffix == ".onnx":
            return "onnx"
        if Path(src).is_dir() and formats.has_runner(src):
            return "registered"  # a folder format (TensorFlow SavedModel)
        if suffix == ".py":
            return "torch-py"
        if formats.has_runner(src):
            return "registered"  # another runtime (ncnn, TorchScript, ...): formats.FORMATS
        if not Path(src).exists():
            raise InputError(f"{src}: no such file")
        raise InputError(f"{src}: cannot verify a {suffix or 'suffix-less'} file "
                         "(expected .onnx or a generated .py)")
    raise InputError(f"cannot verify an object of type {type(src).__name__}")


def _runner(src, specs: list[InputSpec] | None):
    kind = _kind(src)
    if kind == "deferred":
        return _runner(src.make(), specs)
    if kind == "onnx":
        return OrtRunner(src)
    names = [s.name for s in specs] if specs else None
    if kind == "registered":
        if not Path(src).exists():
            raise InputError(f"{src}: no such file")
        return formats.runner_for(src)(src, specs)
    from .torch_runner import TorchRunner, load_generated

    if kind == "torch":
        return TorchRunner(src, type(src).__name__, names)
    return TorchRunner(load_generated(src), str(src), names)


def verify(a, b, *, input_shapes: dict | None = None, inputs: dict | None = None,
           seed: int = 0, rtol: float | None = None, atol: float | None = None,
           specs: list[InputSpec] | None = None, quant_step: bool = True) -> VerifyReport:
    """Compare ``b`` against the reference ``a`` on seeded random (or given) inputs.

    ``a``/``b``: an .onnx path, ModelProto or ir.Model (run by onnxruntime), a generated .py
    (its ``load()``), or an nn.Module taking the ONNX inputs positionally; ``b`` also a
    ``Deferred`` one of these (made after ``a`` has run and been released).
    ``quant_step``: with default tolerances, outputs of a quantized ONNX model (QDQ or
    QOperator) also match within one quantization step (``quant.py`` says which step).
    """
    if specs is None:
        for src in (a, b):
            if _kind(src) == "onnx":
                # only the graph's inputs are needed: do not read the weights
                specs = specs_from_model(load_model(src, lazy=isinstance(src, (str, os.PathLike))))
                break
    if specs is None:
        for src in (a, b):  # a runner that knows its inputs (e.g. TensorFlow) will do
            if _kind(src) == "registered":
                runner = _runner(src, None)
                if hasattr(runner, "input_specs"):
                    specs = runner.input_specs()
                    break
    if specs is None:
        raise InputError("verify needs at least one ONNX side to know the inputs")
    shapes = resolve_shapes(specs, input_shapes)
    feeds = random_inputs(specs, shapes, seed, inputs)
    # before either side is made: reading the scales maps the model file
    steps = onnx_quant_steps(a, b) if quant_step and rtol is None and atol is None else {}
    unordered = unordered_axes(a, b)
    # one side at a time, each released before the next is built: memory stays near one
    # copy of the weights even for large models
    from .. import progress

    progress.update(f"running {_name(a)}")
    ra = _runner(a, specs)
    outs_a = ra.run(feeds)
    names_a = getattr(ra, "output_names", None)
    del ra
    gc.collect()
    progress.update(f"running {_name(b)}")
    rb = _runner(b, specs)
    outs_b = rb.run(feeds)
    names = names_a or getattr(rb, "output_names", None) or [
        f"output_{i}" for i in range(len(outs_a))]
    del rb
    report = VerifyReport(_name(a), _name(b),
                          {k: {"shape": list(v.shape), "dtype": v.dtype.name}
                           for k, v in feeds.items()}, seed=seed)
    if len(outs_a) != len(outs_b):
        from .compare import OutputReport
        report.outputs.append(OutputReport("<outputs>", "", [], False, float("inf"), float("inf"),
                                           None, 0, 0, f"{len(outs_a)} outputs vs {len(outs_b)}"))
        return report
    if rtol is None and atol is None and _fp16_ncnn(b):
        rtol, atol = 1e-2, 1e-2  # as `convert --fp16` verifies: float16 weights
    for name, x, y in zip(names, outs_a, outs_b):
        axis = unordered.get(name)
        if axis is not None and isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and \
                x.shape == y.shape and x.ndim and -x.ndim <= axis < x.ndim:
            # TopK(sorted=0): ONNX leaves the order along its axis open (onnxruntime's is
            # not torch's), so both sides are compared sorted along it
            x, y = np.sort(x, axis=axis), np.sort(y, axis=axis)
        rep = compare_arrays(name, x, y, rtol, atol, step=steps.get(name))
        if axis is not None:
            rep.note = "; ".join(filter(None, ["order along the TopK axis ignored (sorted=0)",
                                               rep.note]))
        report.outputs.append(rep)
    return report


def unordered_axes(a, b) -> dict[str, int]:
    """Graph outputs of the ONNX side (``a`` first) that a TopK with ``sorted=0`` produces, and
    its axis: the order of the k values along it is unspecified."""
    for src in (a, b):
        if src is None or _kind(src) != "onnx":
            continue
        try:
            model = src if isinstance(src, (ir.Model, ModelProto)) else load_model(src,
                                                                                  lazy=True)
        except Exception:
            return {}
        found = {}
        if isinstance(model, ModelProto):  # read as it is: no copy of its weights
            outs = {o.name for o in model.graph.output}
            for node in model.graph.node:
                attrs = {a.name: a for a in node.attribute}
                if node.op_type == "TopK" and node.domain in ("", "ai.onnx") and \
                        "sorted" in attrs and attrs["sorted"].i == 0:
                    axis = attrs["axis"].i if "axis" in attrs else -1
                    found.update({o: axis for o in node.output if o in outs})
            return found
        outs = {v.name for v in model.graph.outputs}
        for node in model.graph:
            srt, ax = node.attributes.get("sorted"), node.attributes.get("axis")
            if node.op_type != "TopK" or node.domain not in ("", "ai.onnx") or srt is None or \
                    srt.type != ir.AttributeType.INT or srt.as_int() != 0:
                continue
            axis = ax.as_int() if ax is not None and ax.type == ir.AttributeType.INT else -1
            found.update({o.name: axis for o in node.outputs if o.name in outs})
        return found
    return {}


def _fp16_ncnn(src) -> bool:
    if not isinstance(src, (str, os.PathLike)) or not str(src).endswith(".param"):
        return False
    from ..ncnn_emit.serializer import has_fp16_weights

    return has_fp16_weights(os.path.splitext(str(src))[0] + ".bin")


def onnx_quant_steps(a, b) -> dict:
    """The quantization steps of the ONNX side's tensors (``a`` first); {} when neither side is
    ONNX or the model is not quantized."""
    from .quant import quant_steps

    for src in (a, b):
        if src is not None and _kind(src) == "onnx":
            try:
                return quant_steps(src if not isinstance(src, (str, os.PathLike))
                                   else load_model(src, lazy=True))
            except InputError:
                raise
            except Exception:
                return {}  # an unreadable scale: the dtype rule applies
    return {}
