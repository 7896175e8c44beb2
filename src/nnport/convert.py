"""The conversion jobs: ONNX -> PyTorch source/weights or an in-memory module."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx_ir as ir

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


def prepare(src: ModelSource) -> ir.Model:
    """Load and normalize (a fresh copy: the caller's ModelProto is never modified)."""
    import onnx

    if isinstance(src, ir.Model):
        src = ir.to_proto(src)
    if isinstance(src, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(src)
        src = copy
    return normalize(load_model(src))


def generate_torch(src: ModelSource) -> tuple[str, dict]:
    from .torch_emit import generate

    return generate(prepare(src), source_name=_source_name(src))


def to_torch(src: ModelSource):
    from .torch_emit import build_module

    source, state = generate_torch(src)
    return build_module(source, state, name=_source_name(src))


def convert(src: ModelSource, dst: str | os.PathLike, *, verify: bool = True,
            input_shapes: dict | None = None, inputs: dict | None = None, seed: int = 0,
            rtol: float | None = None, atol: float | None = None) -> ConvertResult:
    dst = Path(dst)
    suffix = dst.suffix.lower()
    if suffix != ".py":
        raise InputError(f"{dst}: unknown output type {suffix or '(none)'!r}; "
                         "use .py for PyTorch source")
    check_output_path(dst)
    from .torch_emit import build_module, write

    source, state = generate_torch(src)
    report = None
    if verify:
        from .verify import verify as run_verify

        module = build_module(source, state, name=_source_name(src))
        report = run_verify(src, module, input_shapes=input_shapes, inputs=inputs, seed=seed,
                            rtol=rtol, atol=atol)
        report.b = str(dst)
    py, st = write(source, state, dst)
    return ConvertResult([py, st], report)
