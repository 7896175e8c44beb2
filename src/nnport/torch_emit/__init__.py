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
from .codegen import REGISTRY, CodeGen, Transposed, preflight

__all__ = ["generate", "build_module", "write", "preflight", "REGISTRY"]


def generate(model: ir.Model, source_name: str = "model.onnx",
             record: bool = False) -> tuple[str, dict[str, Any]]:
    """Source code and state (state_dict key -> ir tensor or numpy array) for a normalized model.
    ``record=True`` makes forward() report every node output to ``module.recorder``."""
    missing = preflight(model)
    if missing:
        raise UnsupportedOpsError("torch", missing)
    if not record:  # recording names every ONNX node's output: keep them unfused
        from ..passes.fuse_attention import fuse_attention
        from ..passes.fuse_gelu import fuse_gelu
        from ..passes.fuse_linear import fuse_linear

        fuse_attention(model)
        fuse_gelu(model)
        fuse_linear(model)
    return CodeGen(model, source_name=source_name, record=record).generate()


def tensor_of(value: Any, maps: dict | None = None) -> torch.Tensor:
    """A torch tensor for a state value.  With ``maps`` (path -> mmap), tensors stored in a file
    (external data, or the big weights of a lazily loaded model) become copy-on-write views of
    a private mapping of that file: no copy, and still writable (training works)."""
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


_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32",
    torch.uint64: "U64", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.complex64: "C64",
}
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
    maps: dict = {}
    tensors = {k: tensor_of(v, maps) for k, v in state.items()}
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


_TRANSPOSE_CHUNK = 64 << 20  # bytes of transposed output per step


def _scratch(buf: dict, key: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A reused scratch tensor of at least ``numel`` elements (one allocation per size)."""
    t = buf.get(key)
    if t is None or t.numel() < numel or t.dtype != dtype:
        t = buf[key] = torch.empty(max(numel, _TRANSPOSE_CHUNK // max(1, dtype.itemsize)),
                                   dtype=dtype)
    return t[:numel]


def _write_transposed(fh, value: Transposed, buf: dict) -> None:
    """Write ``value`` (transposed, row-major) from its external base, holding at most about
    ``_TRANSPOSE_CHUNK`` bytes of it at a time: the pages of a mapped tensor leave the process
    again before the next tensor."""
    import mmap

    t = value.base
    k, n = value.shape[1], value.shape[0]
    dt = np.dtype(t.dtype.numpy()).newbyteorder("<")
    tdt = torch.from_numpy(np.zeros(0, dt)).dtype
    off = t.offset or 0
    with open(t.path, "rb", buffering=0) as src:
        if os.fstat(src.fileno()).st_size < off + t.nbytes:
            raise ConversionError(f"tensor {t.name!r}: external data is shorter than its "
                                  "shape says")
        if t.nbytes <= _TRANSPOSE_CHUNK:
            # one step: read into a reused buffer (cheaper than faulting in a fresh mapping
            # page by page), transpose into another
            raw, out = _scratch(buf, "raw", k * n, tdt), _scratch(buf, "out", k * n, tdt)
            view, got = memoryview(raw.numpy()).cast("B"), 0
            while got < t.nbytes:
                r = os.preadv(src.fileno(), [view[got:]], off + got)
                if r <= 0:
                    raise ConversionError(f"tensor {t.name!r}: cannot read its external data")
                got += r
            out.view(n, k).copy_(raw.view(k, n).t())  # torch's blocked transpose (fast)
            fh.write(memoryview(out.numpy()).cast("B"))
            return
        start = off - off % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(src.fileno(), off - start + t.nbytes, access=mmap.ACCESS_COPY,
                       offset=start)
    arr = base = None
    try:
        arr = np.frombuffer(mm, dtype=dt, count=k * n, offset=off - start).reshape(k, n)
        base = torch.from_numpy(arr)
        rows = max(1, min(n, _TRANSPOSE_CHUNK // max(1, k * arr.itemsize)))  # output rows
        for j in range(0, n, rows):
            m = min(rows, n - j)
            out = _scratch(buf, "out", m * k, tdt).view(m, k)
            out.copy_(base[:, j:j + m].t())
            fh.write(memoryview(out.numpy()).cast("B"))
    finally:
        arr = base = None  # no view of the mapping may outlive it
        mm.close()


def _entry_of(value: Any, buf: dict | None = None):
    """(safetensors dtype, shape, nbytes, writer(fh)) for one state value, reading nothing yet."""
    if isinstance(value, Transposed):
        base = value.base
        name = np.dtype(value.dtype.numpy()).name if value.dtype.bitwidth >= 8 else ""
        if name in _PLAIN_NUMPY and isinstance(base, ir.ExternalTensor) and base.size:
            tdt = numpy_to_torch(np.zeros(0, dtype=name)).dtype
            buf = {} if buf is None else buf

            def write_tr(fh, v=value):
                _write_transposed(fh, v, buf)

            return _SAFETENSORS_DTYPES[tdt], list(value.shape), value.nbytes, write_tr
        if name in _PLAIN_NUMPY:
            tdt = numpy_to_torch(np.zeros(0, dtype=name)).dtype

            def write_np_t(fh, v=value):
                a = v.numpy()
                if a.size:
                    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
                    fh.write(memoryview(a.reshape(-1).view(np.uint8)))

            return _SAFETENSORS_DTYPES[tdt], list(value.shape), value.nbytes, write_np_t
        value = tensor_of(value).contiguous()  # odd types (bfloat16...): convert now
    if isinstance(value, ir.ExternalTensor):
        name = np.dtype(value.dtype.numpy()).name if value.dtype.bitwidth >= 8 else ""
        if name in _PLAIN_NUMPY:
            tdt = numpy_to_torch(np.zeros(0, dtype=name)).dtype
            shape = [int(d) for d in value.shape.numpy()]

            def copy_file(fh, t=value):  # straight from file to file: no copy in memory
                fh.flush()
                dst = fh.fileno()
                with open(t.path, "rb") as src:
                    pos, left = t.offset or 0, t.nbytes
                    while left:
                        try:
                            n = os.copy_file_range(src.fileno(), dst, min(left, 1 << 30), pos)
                        except (AttributeError, OSError):
                            n = os.write(dst, os.pread(src.fileno(), min(left, 1 << 24), pos))
                        if n <= 0:
                            raise ConversionError(f"tensor {t.name!r}: external data is "
                                                  "shorter than its shape says")
                        pos += n
                        left -= n
                fh.seek(0, os.SEEK_END)

            return _SAFETENSORS_DTYPES[tdt], shape, value.nbytes, copy_file

    t = value if isinstance(value, torch.Tensor) else None
    if t is None:
        # plain types: dtype and shape from the metadata; the data is read when written
        if isinstance(value, np.ndarray):
            name, shape, nbytes = value.dtype.name, list(value.shape), value.nbytes
        else:
            name = np.dtype(value.dtype.numpy()).name if value.dtype.bitwidth >= 8 else ""
            shape, nbytes = [int(d) for d in value.shape.numpy()], value.nbytes
        if name in _PLAIN_NUMPY:
            tdt = numpy_to_torch(np.zeros(0, dtype=name)).dtype

            def write_np(fh, v=value):
                a = v if isinstance(v, np.ndarray) else v.numpy()
                a = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False)
                if a.size:
                    fh.write(memoryview(a.reshape(-1).view(np.uint8)))

            return _SAFETENSORS_DTYPES[tdt], shape, nbytes, write_np
        t = tensor_of(value).contiguous()  # odd types (bfloat16, float8, int4): convert now
    if t.dtype not in _SAFETENSORS_DTYPES:
        raise ConversionError(f"no safetensors type for {t.dtype}")
    shape = list(t.shape)
    nbytes = t.numel() * t.element_size()

    def write_t(fh, t=t):
        if t.numel():
            fh.write(memoryview(t.contiguous().view(-1).view(torch.uint8).numpy()))

    return _SAFETENSORS_DTYPES[t.dtype], shape, nbytes, write_t


def write_safetensors(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a .safetensors file tensor by tensor (never all tensors in memory at once).

    Layout (the safetensors format): 8-byte little-endian header length, a JSON header mapping
    each name to dtype/shape/data_offsets plus ``__metadata__``, then the raw little-endian bytes
    in header order.  Keys are sorted so that the same model gives the same file.
    """
    import json
    import struct

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    writers = []
    offset = 0
    buf: dict = {}  # scratch tensors shared by the transposing writers
    for key in sorted(state):
        dtype, shape, nbytes, writer = _entry_of(state[key], buf)
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        writers.append((writer, nbytes))
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    # no O_TRUNC: on ext4 a file truncated to zero and rewritten is flushed to disk on close
    # (auto_da_alloc), which costs a large model about half a second; truncate at the end
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    with open(fd, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        from .. import progress

        for i, (writer, nbytes) in enumerate(writers):
            start = fh.tell()
            writer(fh)
            progress.update("writing weights", i + 1, len(writers))
            if fh.tell() - start != nbytes:
                raise ConversionError("internal error: tensor size mismatch while writing "
                                      f"{path}")
        fh.truncate()  # a longer file that was there before ends here


def write(source: str, state: dict[str, Any], py_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write model.py and model.safetensors atomically (temp files, then rename)."""
    py_path = check_output_path(py_path)
    st_path = py_path.with_suffix(".safetensors")
    tmp_py = temp_path_beside(py_path)
    tmp_st = temp_path_beside(st_path)
    try:
        write_safetensors(state, tmp_st)
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
