"""ONNX -> PyTorch: generate source + weights, build an in-memory module, write files."""
from __future__ import annotations

import contextlib
import hashlib
import linecache
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir
import torch

from ..dtypes import numpy_to_torch
from ..errors import ConversionError, UnsupportedOpsError
from ..io import check_output_path, temp_path_beside
from . import ops as _ops  # noqa: F401  (registers every emitter)
from .codegen import REGISTRY, CodeGen, preflight

__all__ = ["generate", "build_module", "write", "preflight", "REGISTRY"]


def generate(model: ir.Model, source_name: str = "model.onnx",
             record: bool = False) -> tuple[str, dict[str, Any]]:
    """Source code and state (state_dict key -> ir tensor or numpy array) for a normalized model.
    ``record=True`` makes forward() report every node output to ``module.recorder``."""
    missing = preflight(model)
    if missing:
        raise UnsupportedOpsError("torch", missing)
    return CodeGen(model, source_name=source_name, record=record).generate()


def tensor_of(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    arr = value if isinstance(value, np.ndarray) else value.numpy()
    return numpy_to_torch(arr)


def build_module(source: str, state: dict[str, Any], name: str = "nnport_generated") -> torch.nn.Module:
    """Exec the generated source as a real module (so inspect/TorchScript can read it) and load
    the state into a Model built on the meta device."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    modname = f"_nnport_gen_{digest}"
    filename = f"<nnport:{name}:{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(modname)
    mod.__file__ = filename
    code = compile(source, filename, "exec")
    sys.modules[modname] = mod
    exec(code, mod.__dict__)
    with torch.device("meta"):
        model = mod.Model()
    tensors = {k: tensor_of(v) for k, v in state.items()}
    model.load_state_dict(tensors, assign=True)
    return model.eval()


@contextlib.contextmanager
def _folder_lock(path: Path):
    import fcntl

    lock = path.parent / f".{path.stem}.nnport.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write(source: str, state: dict[str, Any], py_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write model.py and model.safetensors atomically (temp files, then rename)."""
    from safetensors.torch import save_file

    py_path = check_output_path(py_path)
    st_path = py_path.with_suffix(".safetensors")
    tmp_py = temp_path_beside(py_path)
    tmp_st = temp_path_beside(st_path)
    try:
        tensors = {k: tensor_of(v).contiguous() for k, v in sorted(state.items())}
        # one metadata key: safetensors orders several keys differently from run to run
        save_file(tensors, tmp_st, metadata={"format": "pt"})
        del tensors
        with open(tmp_py, "w", encoding="utf-8") as fh:
            fh.write(source)
        # two conversions into one folder at once: the pair of renames is one critical section
        with _folder_lock(py_path):
            os.replace(tmp_st, st_path)
            os.replace(tmp_py, py_path)
    except BaseException:
        for t in (tmp_py, tmp_st):
            with contextlib.suppress(OSError):
                os.unlink(t)
        raise
    return py_path, st_path
