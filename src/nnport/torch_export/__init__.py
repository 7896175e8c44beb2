"""PyTorch -> ONNX export (dynamo exporter, TorchScript fallback), TorchScript output, custom ops.

Holds the conversion targets ``.onnx`` (from a PyTorch source: ``file.py:factory``,
``package.module:attr``, a TorchScript ``.pt``/``.pth``, an ExportedProgram ``.pt2``) and ``.pt``
(TorchScript from an ONNX model through the generated PyTorch code), and the verify runners
for ``.pt``/``.pth`` (TorchScript) and ``.pt2`` (ExportedProgram) files; ``formats.FORMATS`` names
them.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..convert import ConvertResult
from ..errors import ConversionError, InputError
from ..io import ModelProto, check_output_path, discard, temp_path_beside, written

if TYPE_CHECKING:
    import torch


# torch is imported by what runs, not by this package: registering the targets and runners
# (done by every ``nnport convert``) must not cost torch's import.
_LAZY = {"custom_ops": None, "resolve_source": "sources", "check_exportable": "exporter",
         "export": "exporter", "export_proto": "exporter", "parse_dynamic_arg": "args",
         "parse_export_shape": "args", "simplify": "exporter", "unsupported_ops": "exporter"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    sub = _LAZY[name]
    if sub is None:
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module(f"{__name__}.{sub}"), name)

__all__ = ["export", "export_proto", "check_exportable", "unsupported_ops", "simplify",
           "custom_ops", "resolve_source", "to_torchscript", "parse_dynamic_arg",
           "parse_export_shape"]


def _is_onnx_source(src) -> bool:
    import onnx_ir as ir

    from ..io import source_loader

    if isinstance(src, (ModelProto, ir.Model)):
        return True
    if not isinstance(src, (str, os.PathLike)):
        return False
    # .onnx files, and sources that load as ONNX (TensorFlow/Keras through tf2onnx)
    return Path(src).suffix.lower() == ".onnx" or source_loader(src) is not None


def _concrete(shapes: dict | None, flag: str = "--input-shape") -> dict:
    out = {}
    for k, v in (shapes or {}).items():
        if any(d is None for d in v):
            raise InputError(f"{flag} {k}: export needs concrete dims ('?' is not allowed)")
        out[k] = tuple(v)
    return out


def convert_to_onnx(src, dst, *, verify: bool = True, input_shapes: dict | None = None,
                    inputs: dict | None = None, seed: int = 0, rtol: float | None = None,
                    atol: float | None = None, dynamic: dict | None = None,
                    opset: int | None = None, exporter: str | None = None,
                    no_simplify: bool = False, check_shapes: dict | None = None) -> ConvertResult:
    """A PyTorch source -> ONNX (see :func:`export`); an ONNX source is simplified and verified
    against itself."""
    from .exporter import export, simplify

    if _is_onnx_source(src):
        if dynamic or exporter or check_shapes or opset:
            raise InputError(f"{src}: --dynamic/--exporter/--opset/--check-shape apply to PyTorch "
                             "sources, and this one is already ONNX")
        from ..io import load_proto, save_model

        check_output_path(dst)
        proto = load_proto(src)
        out = proto if no_simplify else simplify(proto)
        report = None
        if verify:
            from ..verify import verify as run_verify

            report = run_verify(src, out, input_shapes=input_shapes, inputs=inputs, seed=seed,
                                rtol=rtol, atol=atol)
            report.b = str(dst)
        save_model(out, dst)
        return ConvertResult([Path(dst)], report)
    import torch

    feeds = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in (inputs or {}).items()}
    return export(src, dst, input_shapes=_concrete(input_shapes), inputs=feeds, dynamic=dynamic,
                  opset=opset, exporter=exporter, simplify_model=not no_simplify, verify=verify,
                  check_shapes=_concrete(check_shapes, "--check-shape"), seed=seed, rtol=rtol,
                  atol=atol)


def _trace(module, example):
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes read as Python ints
        return torch.jit.trace(module, example, check_trace=False)


def to_torchscript(module: torch.nn.Module, example: tuple | None = None, *,
                   prefer: str = "script"):
    """torch.jit.script, falling back to torch.jit.trace on ``example``; ``prefer="trace"``
    the other way round.  Returns (script, how)."""
    import torch

    if prefer == "trace" and example is not None:
        try:
            return _trace(module, example), "trace"
        except Exception as exc:
            trace_err = " ".join(str(exc).split())[:200]
        try:
            return torch.jit.script(module), "script"
        except Exception as exc:
            raise ConversionError(f"torch.jit.trace failed ({trace_err}); torch.jit.script "
                                  f"failed too ({' '.join(str(exc).split())[:200]})") from None
    try:
        return torch.jit.script(module), "script"
    except Exception as exc:
        script_err = " ".join(str(exc).split())[:200]
    if example is None:
        raise ConversionError(f"torch.jit.script failed ({script_err}) and there are no example "
                              "inputs to trace with")
    try:
        return _trace(module, example), "trace"
    except Exception as exc:
        raise ConversionError(f"torch.jit.script failed ({script_err}); torch.jit.trace failed "
                              f"too ({' '.join(str(exc).split())[:200]})") from None


def _control_flow_ops(model) -> list[str]:
    """The control-flow op types (If, Loop, Scan) anywhere in an ONNX model (onnx_ir)."""
    from ..irutil import iter_nodes

    return sorted({n.op_type for n, _ in iter_nodes(model.graph)
                   if n.op_type in ("If", "Loop", "Scan") and n.domain in ("", "ai.onnx")})


def convert_to_torchscript(src, dst, *, verify: bool = True, input_shapes: dict | None = None,
                           inputs: dict | None = None, seed: int = 0, rtol: float | None = None,
                           atol: float | None = None,
                           custom_ops: dict | None = None) -> ConvertResult:
    """ONNX -> generated PyTorch code -> TorchScript (.pt), verified against onnxruntime.  A
    PyTorch source is scripted (or traced) directly and verified against itself.
    ``custom_ops``: your code for custom-domain nodes of an ONNX source
    (``convert.generate_torch``)."""
    import torch

    dst = check_output_path(dst)
    report = None
    notes = []
    if _is_onnx_source(src):
        from ..convert import _source_name, prepare
        from ..torch_emit import build_module, generate
        from ..verify.inputs import random_inputs, resolve_shapes, specs_from_model

        # one normalized model serves the inputs, the control-flow question and the code
        # (preparing twice held the weights it folds twice)
        prepared = prepare(src)
        specs = specs_from_model(prepared)
        flow = _control_flow_ops(prepared)
        source, state = generate(prepared, source_name=_source_name(src),
                                 custom_ops=custom_ops)
        del prepared
        shapes = resolve_shapes(specs, input_shapes)
        feeds = random_inputs(specs, shapes, seed, inputs)
        from ..verify.torch_runner import to_torch_input

        example = tuple(to_torch_input(feeds[s.name]) for s in specs)
        made = []

        def script():
            module = build_module(source, state, name=_source_name(src))
            # traced wherever the graph allows (pnnx and other TorchScript consumers read
            # traced graphs; a scripted module's helper calls are prim::CallFunction); scripted
            # only when the graph branches or loops on values (a trace would freeze one path)
            made.append(to_torchscript(module, example, prefer="script" if flow else "trace"))
            return made[-1][0]

        if verify:
            from ..verify import Deferred
            from ..verify import verify as run_verify

            # built once onnxruntime has run and let go of its copy of the weights
            report = run_verify(src, Deferred(script, str(dst)), input_shapes=input_shapes,
                                inputs=inputs, seed=seed, rtol=rtol, atol=atol)
            report.b = str(dst)
        else:
            script()
        del state
        scripted, how = made[-1]
        why = f" (the graph has {', '.join(flow)}: control flow on values)" if flow and \
            how == "script" else ""
        notes.append(f"TorchScript by torch.jit.{how}{why}")
    else:
        from .exporter import _gen_inputs, _run_torch
        from .sources import resolve_source

        source = resolve_source(src)
        if source.kind == "program":
            raise InputError(f"{src}: an ExportedProgram cannot be turned into TorchScript")
        feeds = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in (inputs or {}).items()}
        example = _gen_inputs(source, _concrete(input_shapes), feeds, seed)
        if source.kind == "script":
            scripted, how = source.obj, "load"
        else:
            scripted, how = to_torchscript(source.obj, tuple(example.values()))
        notes.append(f"TorchScript by torch.jit.{how}")
        if verify:
            from ..verify.compare import VerifyReport, compare_arrays

            ref = _run_torch(source, example, "example")
            with torch.no_grad():
                got = torch.utils._pytree.tree_leaves(scripted(*example.values()))
            report = VerifyReport(f"{source.name} (torch)", str(dst),
                                  {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                                   for k, v in example.items()}, seed=seed)
            for i, (r, g) in enumerate(zip(ref, got)):
                report.outputs.append(compare_arrays(f"output_{i}", r.numpy(), g.numpy(),
                                                     rtol, atol))
    tmp = temp_path_beside(dst)
    try:
        torch.jit.save(scripted, tmp)
        os.replace(tmp, dst)
    except BaseException:
        discard(tmp)
        raise
    written(dst)
    return ConvertResult([Path(dst)], report, notes)


class _TorchModuleRunner:
    kind = "torch"

    def __init__(self, module, name, specs):
        self.module = module
        self.name = name
        self.names = [s.name for s in specs] if specs else None

    def run(self, feeds):
        from ..verify.torch_runner import TorchRunner

        return TorchRunner(self.module, self.name, self.names).run(feeds)


def torchscript_runner(path, specs):
    from .sources import resolve_source

    src = resolve_source(str(path))
    return _TorchModuleRunner(src.obj, str(path), specs)


def program_runner(path, specs):
    from .sources import resolve_source

    src = resolve_source(str(path))
    return _TorchModuleRunner(src.obj.module(), str(path), specs)
