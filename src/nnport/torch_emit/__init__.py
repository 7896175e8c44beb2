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

from ..errors import InputError, UnsupportedOpsError
from ..io import check_output_path, discard, temp_path_beside, written
from . import ops as _ops  # noqa: F401  (registers every emitter)
from .codegen import CodeGen
from .custom import registry_with
from .emitter import REGISTRY, Transposed, preflight

__all__ = ["generate", "build_module", "write", "preflight", "REGISTRY"]


def fuse(model: ir.Model) -> ir.Model:
    """The torch-only fusions (attention -> SDPA, erf/tanh-GELU, SiLU, Mish, HardSwish,
    LayerNorm/RMSNorm decompositions, MatMul(+bias) -> Linear, Split+Squeeze -> unbind), in
    place."""
    from ..passes.base import run_passes
    from ..passes.torch import FUSIONS

    run_passes(model, FUSIONS)
    return model


CONTROL_FLOW = ("if", "cond")


def generate(model: ir.Model, source_name: str = "model.onnx", record: bool = False,
             flat: bool = False, control_flow: str = "if",
             lines: dict[str, int] | None = None,
             custom_ops: dict | None = None) -> tuple[str, dict[str, Any]]:
    """Source code and state (state_dict key -> ir tensor or numpy array) for a normalized model.
    ``lines``: a dict to fill with the line (1-based) of the source that computes each node.
    ``record=True`` makes forward() report every node output to ``module.recorder``.
    ``flat=True``: one ``Model`` class, as before the module tree (tree.py) was recovered.
    ``control_flow="cond"``: an If on a runtime value is ``torch.cond`` (torch.export keeps
    both branches) instead of a Python ``if``.
    ``custom_ops``: ``{"domain::op_type": fn or "module:function"}``, your code for custom-domain
    nodes, for this conversion only (``custom.registry_with``)."""
    if control_flow not in CONTROL_FLOW:
        raise InputError(f"--control-flow {control_flow!r}: use one of {', '.join(CONTROL_FLOW)}")
    registry = registry_with(custom_ops)
    missing = preflight(model, registry)
    if missing:
        raise UnsupportedOpsError("torch", missing)
    # also when recording (verify --locate): the module must hold the same weights under the
    # same names as the written model.py; a fused node records the output it replaces
    fuse(model)
    gen = CodeGen(model, source_name=source_name, registry=registry, record=record, flat=flat,
                  control_flow=control_flow)
    source, state = gen.generate()
    if lines is not None:
        lines.update(gen.line_of)
    return source, state


def tensor_of(value: Any, maps: dict | None = None):
    """A torch tensor for a state value.  With ``maps`` (path -> mmap), tensors stored in a file
    (external data, or the big weights of a lazily loaded model) become copy-on-write views of
    a private mapping of that file: no copy, and still writable (training works)."""
    import torch

    from ..dtypes import numpy_to_torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, Transposed):
        return tensor_of(value.base, maps).t()  # a view: F.linear multiplies by it as is
    if maps is not None and isinstance(value, ir.ExternalTensor):
        arr = _mapped_array(value, maps)
        if arr is not None:
            return torch.from_numpy(arr)
    arr = value if isinstance(value, np.ndarray) else value.numpy()
    return numpy_to_torch(arr)


_PLAIN_NUMPY = {"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8",
                "bool", "uint16", "uint32", "uint64"}


def _mapped_array(t: "ir.ExternalTensor", maps: dict) -> np.ndarray | None:
    import mmap

    dt = t.dtype.numpy()
    if np.dtype(dt).name not in _PLAIN_NUMPY or t.size == 0:
        return None
    path = t.path
    mm = maps.get(path)
    if mm is None:
        with open(path, "rb") as fh:
            mm = maps[path] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    arr = np.frombuffer(mm, dtype=np.dtype(dt).newbyteorder("<"), count=t.size,
                        offset=t.offset or 0)
    return arr.reshape(t.shape.numpy())


def build_module(source: str, state: dict[str, Any], name: str = "nnport_generated"):
    """Exec the generated source as a real module (so inspect/TorchScript can read it) and load
    the state into a Model built on the meta device (a ``torch.nn.Module``)."""
    import torch

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
    maps: dict = {}
    # nn.Linear weights made from MatMul's (K, N) matrices: as transposed views of the mapped
    # file they cost no memory (a large model stays bounded); a small model gets them copied
    # into the (N, K) layout nn.Linear has, which torch's GEMM runs up to 5% faster at small
    # batch (ConvNeXt-T's late stages, measured)
    copy = sum(v.nbytes for v in state.values()
               if isinstance(v, Transposed)) <= _LINEAR_COPY_BYTES
    tensors = {}
    for key, value in state.items():
        if copy and isinstance(value, Transposed):
            tensors[key] = _transposed_copy(value)
        else:
            tensors[key] = tensor_of(value, maps)
    model.load_state_dict(tensors, assign=True)
    return model.eval()


_LINEAR_COPY_BYTES = 256 << 20


def _transposed_copy(value: Transposed):
    """``value`` laid out as nn.Linear's (N, K) weight, in memory of its own: a weight in a
    file is read by itself, not through a mapping of the whole file (which, alive while the
    copies are made, would cost the file's size again)."""
    from ..io import SharedExternalTensor

    base = value.base
    if isinstance(base, SharedExternalTensor):
        base = base.read()
    return tensor_of(base).t().contiguous()


@contextlib.contextmanager
def _folder_lock(path: Path):
    """An exclusive lock on ``path``'s folder (flock on the folder itself: no lock file left)."""
    import fcntl

    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


from .st_writer import write_safetensors  # noqa: E402  (re-exported)

# model.safetensors metadata: the line map of the model.py written with it (verify --locate
# reads it while the file is unchanged, see verify/locate.py)
LINES_KEY, SOURCE_KEY = "nnport.lines", "nnport.source_sha256"


def line_metadata(source: str, lines: dict[str, int]) -> dict[str, str]:
    import json

    return {SOURCE_KEY: hashlib.sha256(source.encode()).hexdigest(),
            LINES_KEY: json.dumps(lines, separators=(",", ":"))}


def write(source: str, state: dict[str, Any], py_path: str | os.PathLike,
          lines: dict[str, int] | None = None) -> tuple[Path, Path]:
    """Write model.py and model.safetensors atomically (temp files, then rename).  ``lines``:
    the node -> line map of ``source``, kept in the weights' metadata."""
    py_path = check_output_path(py_path)
    st_path = py_path.with_suffix(".safetensors")
    tmp_py = temp_path_beside(py_path)
    try:
        tmp_st = temp_path_beside(st_path)
    except BaseException:
        discard(tmp_py)
        raise
    try:
        if lines:
            write_safetensors(state, tmp_st, line_metadata(source, lines))
        else:
            write_safetensors(state, tmp_st)
        with open(tmp_py, "w", encoding="utf-8") as fh:
            fh.write(source)
        # two conversions into one folder at once: the pair of renames is one critical section
        with _folder_lock(py_path):
            os.replace(tmp_st, st_path)
            os.replace(tmp_py, py_path)
    except BaseException:
        discard(tmp_py, tmp_st)
        raise
    written(py_path, st_path)
    return py_path, st_path
