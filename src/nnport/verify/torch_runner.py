"""Run a generated model.py (or any nn.Module taking the ONNX inputs positionally)."""
from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..dtypes import numpy_to_torch, torch_to_numpy
from ..errors import InputError, VerificationError


def load_generated(py_path: str | os.PathLike) -> torch.nn.Module:
    """Import a generated model.py and call its load()."""
    path = Path(py_path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    modname = f"_nnport_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(modname, str(path))
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot import as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:
        raise InputError(f"{path}: importing failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(mod, "load"):
        raise InputError(f"{path}: has no load() function (not an nnport-generated file?)")
    try:
        model = _load_once(mod, path)
        return mod.load() if model is None else model
    except Exception as exc:
        raise InputError(f"{path}: load() failed: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]}") from None


def _load_once(mod, path: Path) -> torch.nn.Module | None:
    """What the generated ``load()`` returns, with the weights read into memory once: its
    ``load_file`` maps the whole .safetensors file while it copies each tensor out (twice the
    weights' address space).  None where ``load()`` is not the one nnport wrote (edited by
    hand: then it is what runs) or the weights are not beside the file."""
    from ..torch_emit.assemble import LOAD_SOURCE
    from ..torch_emit.st_writer import read_safetensors

    st = path.with_suffix(".safetensors")
    try:
        same = inspect.getsource(mod.load) == LOAD_SOURCE
    except (OSError, TypeError):
        return None
    if not same or not isinstance(getattr(mod, "Model", None), type) or not st.is_file():
        return None
    with torch.device("meta"):
        model = mod.Model()
    model.load_state_dict(read_safetensors(st), assign=True)
    return model.eval()


def to_numpy(obj):
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        return torch_to_numpy(obj)
    if isinstance(obj, (list, tuple)):
        return [to_numpy(x) for x in obj]
    if isinstance(obj, dict):  # ai.onnx.ml ZipMap: {label: score}
        return obj
    return np.asarray(obj)


def to_torch_input(obj):
    if obj is None:
        return None
    if isinstance(obj, np.ndarray):
        return numpy_to_torch(obj)
    if isinstance(obj, (list, tuple)):
        return [to_torch_input(x) for x in obj]
    return obj


class TorchRunner:
    kind = "torch"

    def __init__(self, module, name: str, input_names: list[str] | None = None):
        self.module = module
        self.name = name
        self.input_names = input_names

    def run(self, feeds: dict[str, np.ndarray]) -> list:
        args = [to_torch_input(feeds[n]) for n in (self.input_names or list(feeds))]
        try:
            with torch.no_grad():
                out = self.module(*args)
        except Exception as exc:
            raise VerificationError(f"the torch model {self.name} failed to run: "
                                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from None
        if not isinstance(out, tuple):
            out = (out,)
        return [to_numpy(o) for o in out]
