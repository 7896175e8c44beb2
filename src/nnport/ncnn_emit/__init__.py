"""ONNX -> ncnn (.param + .bin), verified in the ncnn Python package against onnxruntime."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..convert import ConvertResult, prepare
from ..io import check_output_path, release_tensors

__all__ = ["convert_to_ncnn", "build_graph"]


def build_graph(src, input_shapes: dict | None = None):
    """(ncnn Graph, normalized ir model) for an ONNX source."""
    from ..verify.inputs import resolve_shapes, specs_from_model
    from .emit import convert_graph
    from .legalize import rewrite
    from .legalize.adaptive_pool import fuse_adaptive_pools
    from .legalize.probe import Probe
    from .legalize.unfold import fuse_unfolds
    from .preflight import preflight

    model = prepare(src, infer_shapes=False)  # the probe infers every shape
    preflight(model)
    specs = specs_from_model(model)
    resolve_shapes(specs, input_shapes)  # a wrong --input-shape fails before anything is written
    probe = Probe(model, specs, input_shapes)
    # adaptive pools written out as rank-6 gathers -> one node (tested on the region's numbers)
    fuse_adaptive_pools(model, probe=probe)
    fuse_unfolds(model, probe=probe)  # F.unfold written as rank-6 gathers -> one node
    rewrite.run(model, probe)  # fewer dims for ncnn (exact rewrites; the probe learns them)
    graph = convert_graph(model, probe)
    return graph, model


def _torch_source(src) -> bool:
    """A PyTorch model (module object, ``file.py:factory``, ``package.module:attr``, TorchScript
    .pt/.pth, ExportedProgram .pt2) rather than an ONNX source."""
    from ..torch_export import _is_onnx_source

    if _is_onnx_source(src):  # before importing torch: an ONNX file must not pay for it
        return False
    try:
        import torch
    except ImportError:
        return False
    if isinstance(src, torch.nn.Module) or type(src).__name__ == "ExportedProgram":
        return True
    if not isinstance(src, (str, os.PathLike)):
        return False
    text = os.fspath(src)
    return Path(text).suffix.lower() in (".pt", ".pth", ".pt2") or (
        ":" in text and not Path(text).exists())


def _through_onnx(src, dst, *, verify, input_shapes, inputs, seed, rtol, atol, fp16):
    """PyTorch -> ONNX (exported, simplified, checked against the module) -> ncnn."""
    import tempfile

    from ..torch_export import convert_to_onnx

    with tempfile.TemporaryDirectory(prefix="nnport-") as d:
        onnx_path = Path(d) / "model.onnx"
        first = convert_to_onnx(src, onnx_path, verify=verify, input_shapes=input_shapes,
                                inputs=inputs, seed=seed, rtol=rtol, atol=atol)
        if not first.ok:  # the export itself is wrong: say so, write nothing
            first.outputs = []
            first.notes.append("export to ONNX does not match the PyTorch model; no .param "
                               "written")
            return first
        # the ONNX side reads arrays: tensors given for the module are handed on as such
        arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v)
                  for k, v in (inputs or {}).items()}
        res = convert_to_ncnn(onnx_path, dst, verify=verify, input_shapes=input_shapes,
                              inputs=arrays or None, seed=seed, rtol=rtol, atol=atol, fp16=fp16)
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__
    if res.report is not None:
        res.report.a = f"{name} (exported to ONNX)"
    if first.report is not None:
        worst = max((o.max_rel_err for o in first.report.outputs), default=0.0)
        res.notes.insert(0, f"exported to ONNX first; PyTorch vs onnxruntime: MATCH "
                         f"(max_rel {worst:.3g})")
    return res


def convert_to_ncnn(src, dst: str | os.PathLike, *, verify: bool = True,
                    input_shapes: dict | None = None, inputs: dict | None = None, seed: int = 0,
                    rtol: float | None = None, atol: float | None = None,
                    fp16: bool = False) -> ConvertResult:
    dst = check_output_path(Path(dst))
    check_output_path(dst.with_suffix(".bin"))
    if _torch_source(src):
        return _through_onnx(src, dst, verify=verify, input_shapes=input_shapes, inputs=inputs,
                             seed=seed, rtol=rtol, atol=atol, fp16=fp16)
    from . import serializer

    t0 = time.perf_counter()
    graph, model = build_graph(src, input_shapes)
    param, bin_ = serializer.write(graph, dst, fp16=fp16)
    notes = [f"converted in {time.perf_counter() - t0:.2f} s"] + graph.notes
    # its weights and the model's mapping of the file: not held while verifying
    release_tensors(model)
    del graph, model
    report = None
    if verify:
        from ..verify import verify as run_verify

        if fp16 and rtol is None:
            rtol = 1e-2
        if fp16 and atol is None:
            atol = 1e-2
        report = run_verify(src if not isinstance(src, (str, os.PathLike)) else str(src), param,
                            input_shapes=input_shapes, inputs=inputs, seed=seed, rtol=rtol,
                            atol=atol)
        report.b = str(param)
    return ConvertResult([param, bin_], report, notes)


def ncnn_runner(path, specs):
    from .runner import NcnnRunner

    return NcnnRunner(path, specs)
