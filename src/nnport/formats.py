"""Which module handles which file: one table, read downward by ``convert``, ``verify``, ``io``
and ``cli``.

Each row names a file format by its suffixes (or, for a folder, the file that marks it) and
says, as lazy ``"module:function"`` references, which function writes it as a conversion target,
which builds a runner for ``verify``, and which loads it as ONNX when it is a non-ONNX source.
Nothing is imported until a row is used, so a command pays only for the format it touches, and
no module registers itself by being imported: to add a format, add a row here.

This module is on the ground floor: it imports nothing from nnport.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# File suffixes of PyTorch sources (TorchScript archives, ExportedPrograms).
TORCHSCRIPT_SUFFIXES = (".pt", ".pth")
PROGRAM_SUFFIXES = (".pt2",)
# TensorFlow / Keras sources: files, and SavedModel folders (marked by saved_model.pb).
TF_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...] = ()
    folder_marker: str | None = None  # a folder holding this file is of this format
    # ``fn(src, dst, **options) -> convert.ConvertResult`` for outputs with one of `target_suffixes`
    target: str | None = None
    target_suffixes: tuple[str, ...] | None = None  # default: `suffixes`
    # ``fn(path, specs) -> runner`` (``.run(feeds) -> list of arrays``, optionally
    # ``.output_names`` and ``.input_specs()``)
    runner: str | None = None
    # ``fn(src) -> onnx.ModelProto``: a source that becomes ONNX on load (its options, such as
    # ``nchw``, travel on the source: ``SourcePath``)
    loader: str | None = None

    def matches(self, path: Path) -> bool:
        if path.suffix.lower() in self.suffixes:
            return True
        return self.folder_marker is not None and path.is_dir() and \
            (path / self.folder_marker).is_file()


FORMATS: tuple[Format, ...] = (
    Format("onnx", (".onnx",), target="nnport.torch_export:convert_to_onnx"),
    Format("pytorch-code", (".py",), target="nnport.convert:convert_to_torch"),
    Format("torchscript", TORCHSCRIPT_SUFFIXES, target_suffixes=(".pt",),
           target="nnport.torch_export:convert_to_torchscript",
           runner="nnport.torch_export:torchscript_runner"),
    Format("exported-program", PROGRAM_SUFFIXES, runner="nnport.torch_export:program_runner"),
    Format("ncnn", (".param",), target="nnport.ncnn_emit:convert_to_ncnn",
           runner="nnport.ncnn_emit:ncnn_runner"),
    Format("tensorflow", TF_SUFFIXES, folder_marker="saved_model.pb",
           runner="nnport.tf_source:tf_runner", loader="nnport.tf_source:load"),
)

# Modules that add subcommands or ``convert`` options to the command line, in the order their
# options appear in ``--help`` (each may define add_commands, add_convert_options and
# convert_options).
CLI_MODULES = ("nnport.torch_export.cli", "nnport.ncnn_emit.cli", "nnport.tools.cli",
               "nnport.tf_source.cli")


class SourcePath(os.PathLike):
    """A source path carrying options for its loader and runner (``--nchw`` for TensorFlow
    sources): it goes wherever a path goes, so the options travel as an argument, not as
    process state."""

    def __init__(self, path: str | os.PathLike, **options):
        self.path = os.fspath(path)
        self.options = dict(options)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"SourcePath({self.path!r}, **{self.options!r})"


def source_options(src) -> dict:
    """The options a source carries ({} for a plain path or a model object)."""
    return dict(getattr(src, "options", None) or {}) if isinstance(src, SourcePath) else {}


def resolve(ref: str) -> Callable:
    """``"package.module:function"`` -> the function (its module imported now)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def available(module: str) -> bool:
    """False when an optional part of nnport is not in this build (its module is missing)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if exc.name and exc.name.startswith("nnport"):
            return False
        raise
    return True


def _usable(ref: str | None) -> bool:
    return ref is not None and available(ref.partition(":")[0])


def targets() -> dict[str, str]:
    """Output suffix -> ``"module:function"`` of the target that writes it."""
    out: dict[str, str] = {}
    for f in FORMATS:
        if f.target is not None and _usable(f.target):
            for sfx in f.target_suffixes or f.suffixes:
                out[sfx] = f.target
    return out


def target_for(suffix: str) -> Callable | None:
    ref = targets().get(suffix.lower())
    return resolve(ref) if ref else None


def _runner_format(path: Path) -> Format | None:
    if path.is_dir():  # a folder format (its runner says whether the folder is one)
        return next((f for f in FORMATS if f.runner and f.folder_marker), None)
    suffix = path.suffix.lower()
    return next((f for f in FORMATS if f.runner and suffix in f.suffixes), None)


def has_runner(path: str | Path) -> bool:
    """Whether ``verify`` can run this file (or folder) through a row's runner."""
    f = _runner_format(Path(path))
    return f is not None and _usable(f.runner)


def runner_for(path: str | Path) -> Callable:
    f = _runner_format(Path(path))
    assert f is not None and f.runner is not None
    return resolve(f.runner)


def source_loader(path: str | os.PathLike) -> Callable | None:
    """The loader of a non-ONNX source (a path that becomes ONNX on load), or None."""
    path = Path(path)
    for f in FORMATS:
        if f.loader and f.matches(path) and _usable(f.loader):
            return resolve(f.loader)
    return None
