"""The conversion jobs: ONNX -> PyTorch source/weights or an in-memory module."""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx_ir as ir

from . import formats
from .errors import InputError
from .io import ModelSource, check_output_path, describe, load_model
from .passes import normalize


@dataclass
class ConvertResult:
    outputs: list[Path]
    report: object | None = None  # VerifyReport when verified
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok


def _source_name(src: ModelSource) -> str:
    if isinstance(src, (str, os.PathLike)):
        return Path(src).name
    return describe(src)


def prepare(src: ModelSource, *, infer_shapes: bool = True) -> ir.Model:
    """Load and normalize (a fresh copy: the caller's ModelProto is never modified).
    ``infer_shapes=False`` for targets that measure shapes themselves (ncnn's probe)."""
    from .io import ModelProto, copy_proto, to_proto_inline

    if isinstance(src, ir.Model):
        src = to_proto_inline(src)
    if isinstance(src, ModelProto):
        src = copy_proto(src)
    # a path: big weights stay in the file (mapped when read) instead of in memory
    return normalize(load_model(src, lazy=True), infer=infer_shapes)


def generate_torch(src: ModelSource, flat: bool = False, control_flow: str = "if",
                   lines: dict | None = None, custom_ops: dict | None = None) -> tuple[str, dict]:
    """``flat=True``: one ``Model`` class, not the module tree the exporter recorded.
    ``control_flow="cond"``: If nodes on runtime values as ``torch.cond``.  ``lines``: filled
    with the node -> line map of the source.  ``custom_ops``: ``{"domain::op_type": fn or
    "module:function"}`` for custom-domain nodes (``torch_emit.custom``), this conversion only."""
    from .torch_emit import generate

    return generate(prepare(src), source_name=_source_name(src), flat=flat,
                    control_flow=control_flow, lines=lines, custom_ops=custom_ops)


def to_torch(src: ModelSource, flat: bool = False, control_flow: str = "if",
             custom_ops: dict | None = None):
    from .torch_emit import build_module

    source, state = generate_torch(src, flat=flat, control_flow=control_flow,
                                   custom_ops=custom_ops)
    return build_module(source, state, name=_source_name(src))


def convert(src, dst: str | os.PathLike, **options) -> ConvertResult:
    """Convert ``src`` to ``dst``; the destination suffix picks the target
    (``formats.FORMATS``)."""
    dst = Path(dst)
    suffix = dst.suffix.lower()
    fn = formats.target_for(suffix)
    if fn is None:
        known = ", ".join(sorted(formats.targets()))
        raise InputError(f"{dst}: unknown output type {suffix or '(none)'!r}; use one of {known}")
    params = inspect.signature(fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        for key, value in list(options.items()):
            if key not in params:
                if value in (None, False, {}, [], ()):
                    del options[key]  # an option left at its default: not the user's request
                else:
                    flag = "--" + key.replace("_", "-")
                    raise InputError(f"{flag} does not apply to {suffix} outputs")
    return fn(src, dst, **options)


def convert_to_torch(src: ModelSource, dst: str | os.PathLike, *, verify: bool = True,
                     input_shapes: dict | None = None, inputs: dict | None = None, seed: int = 0,
                     rtol: float | None = None, atol: float | None = None,
                     flat: bool = False, control_flow: str = "if",
                     custom_ops: dict | None = None) -> ConvertResult:
    """ONNX -> model.py + model.safetensors, verified against onnxruntime.  The code has the
    module tree the exporter recorded (classes, original state-dict keys); ``flat=True``
    writes one ``Model`` class instead.  ``control_flow="cond"``: an If on a runtime value is
    ``torch.cond`` (torch.export keeps both branches) instead of a Python ``if``.
    ``custom_ops``: your code for custom-domain nodes (``generate_torch``)."""
    dst = Path(dst)
    check_output_path(dst)
    from .torch_emit import build_module, write

    lines: dict[str, int] = {}
    source, state = generate_torch(src, flat=flat, control_flow=control_flow, lines=lines,
                                   custom_ops=custom_ops)
    report = None
    if verify:
        from .verify import Deferred
        from .verify import verify as run_verify

        # the module is built once onnxruntime has run and let go of its copy of the weights,
        # and dropped before the writer reads them again
        module = Deferred(lambda: build_module(source, state, name=_source_name(src)), str(dst))
        report = run_verify(src, module, input_shapes=input_shapes, inputs=inputs, seed=seed,
                            rtol=rtol, atol=atol)
        report.b = str(dst)
    py, st = write(source, state, dst, lines=lines)
    return ConvertResult([py, st], report)
