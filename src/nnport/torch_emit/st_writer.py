"""Write a state dict as a .safetensors file, tensor by tensor, without importing torch.

Layout (the safetensors format): 8-byte little-endian header length, a JSON header mapping each
name to dtype/shape/data_offsets plus ``__metadata__``, then the raw little-endian bytes in
header order.  Keys are sorted so that the same model gives the same file.

The data is produced by a worker thread (reading weights from their file, transposing the
``nn.Linear`` weights that came from a MatMul) while the calling thread writes the previous
chunk: numpy copies, ``preadv`` and ``write`` all release the GIL, so the two overlap on two
cores.  At most ``_DEPTH`` chunks of at most ``_CHUNK`` bytes are in flight.  Weights stored
unchanged in another file go from file to file with ``copy_file_range`` (no copy in memory).
"""
from __future__ import annotations

import contextlib
import json
import mmap
import os
import queue
import struct
import threading
from typing import Any, Callable, Iterator

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError
from ..io import pread_into
from .emitter import Transposed

class _Stopped(Exception):
    """The writer gave up (an error, or the consumer went away): the worker ends."""


_CHUNK = 64 << 20  # bytes per produced chunk (a transposed weight larger than this is split)
_DEPTH = 2  # chunks produced ahead of the writer

# numpy dtype name -> safetensors dtype (types numpy or ml_dtypes hold bit-exactly)
_ST_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "uint16": "U16", "uint32": "U32", "uint64": "U64", "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2", "complex64": "C64",
}
# sub-byte types are stored widened, as the generated code's torch type holds them
_WIDEN = {"int4": np.int8, "int2": np.int8, "uint4": np.uint8, "uint2": np.uint8}


def _np_dtype(value: Any) -> np.dtype:
    if isinstance(value, np.ndarray):
        return value.dtype
    return np.dtype(value.dtype.numpy())


def _st_dtype(dt: np.dtype, key: str) -> str:
    name = np.dtype(_WIDEN.get(dt.name, dt)).name
    if name not in _ST_DTYPES:
        raise ConversionError(f"weight {key!r}: safetensors has no type for {dt.name}")
    return _ST_DTYPES[name]


def _shape(value: Any) -> list[int]:
    if isinstance(value, (np.ndarray, Transposed)):
        return [int(d) for d in value.shape]
    return [int(d) for d in value.shape.numpy()]


def _little(a: np.ndarray) -> np.ndarray:
    """The little-endian bytes of ``a`` as a flat uint8 array (sub-byte types widened)."""
    wide = _WIDEN.get(a.dtype.name)
    if wide is not None:
        a = a.astype(wide)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _external_ok(t: Any) -> bool:
    """A tensor in a file whose bytes are the stored bytes (plain little-endian type)."""
    return (isinstance(t, ir.ExternalTensor) and t.size > 0 and t.dtype.bitwidth >= 8
            and np.dtype(t.dtype.numpy()).name in _ST_DTYPES)


def _strips(itemsize: int) -> int:
    # rows of the source per step: one output cache line wide (measured fastest for numpy)
    return 8 if itemsize >= 8 else 16


def _transpose_into(out: np.ndarray, src: np.ndarray) -> None:
    """``out[...] = src.T`` in strips of source rows (2.5x numpy's plain strided copy)."""
    s = _strips(src.itemsize)
    for i in range(0, src.shape[0], s):
        out[:, i:i + s] = src[i:i + s].T


def _read_into(fd: int, view: memoryview, offset: int, name: str) -> None:
    if not pread_into(fd, view, offset):
        raise ConversionError(f"tensor {name!r}: external data is shorter than its shape says")


class _Buffers:
    """Reused scratch buffers: the worker does not allocate per tensor.  ``_DEPTH + 1`` output
    buffers circulate between the worker (``take``) and the writer (``free.put``)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.free: queue.Queue = queue.Queue()
        for _ in range(_DEPTH + 1):
            self.free.put(bytearray())
        self.raw = bytearray()

    def take(self, nbytes: int) -> bytearray:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                b = self.free.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        if len(b) < nbytes:
            b = bytearray(max(nbytes, min(_CHUNK, 4 * nbytes)))
        return b

    def scratch(self, nbytes: int) -> bytearray:
        if len(self.raw) < nbytes:
            self.raw = bytearray(max(nbytes, min(_CHUNK, 4 * nbytes)))
        return self.raw


# Items the worker hands the writer: ("buf", bytearray, n) -> write b[:n] and give b back;
# ("bytes", uint8 array) -> write it; ("copy", path, offset, n, name) -> copy_file_range;
# ("end", i) -> tensor i is complete; ("done",); ("error", exception).


def _produce_transposed(value: Transposed, bufs: _Buffers, emit: Callable) -> None:
    base = value.base
    n, k = value.shape  # output (n, k) from the stored (k, n)
    if not _external_ok(base):
        emit(("bytes", _little(value.numpy())))
        return
    dt = np.dtype(base.dtype.numpy()).newbyteorder("<")
    off = base.offset or 0
    with open(base.path, "rb", buffering=0) as src:
        fd = src.fileno()
        if os.fstat(fd).st_size < off + base.nbytes:
            raise ConversionError(f"tensor {base.name!r}: external data is shorter than its "
                                  "shape says")
        if base.nbytes <= _CHUNK:
            # read into a reused buffer (cheaper than faulting in a fresh mapping page by page)
            raw = bufs.scratch(base.nbytes)
            _read_into(fd, memoryview(raw)[:base.nbytes], off, base.name)
            out = bufs.take(base.nbytes)
            _transpose_into(np.frombuffer(out, dt, k * n).reshape(n, k),
                            np.frombuffer(raw, dt, k * n).reshape(k, n))
            emit(("buf", out, base.nbytes))
            return
        # larger than a chunk: transpose column blocks of a private mapping
        start = off - off % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(fd, off - start + base.nbytes, access=mmap.ACCESS_COPY, offset=start)
    arr = None
    try:
        arr = np.frombuffer(mm, dtype=dt, count=k * n, offset=off - start).reshape(k, n)
        rows = max(1, min(n, _CHUNK // max(1, k * dt.itemsize)))  # output rows per chunk
        for j in range(0, n, rows):
            m = min(rows, n - j)
            out = bufs.take(m * k * dt.itemsize)
            _transpose_into(np.frombuffer(out, dt, m * k).reshape(m, k), arr[:, j:j + m])
            emit(("buf", out, m * k * dt.itemsize))
    finally:
        arr = None  # no view of the mapping may outlive it
        mm.close()


def _produce(value: Any, bufs: _Buffers, emit: Callable) -> None:
    if isinstance(value, Transposed):
        _produce_transposed(value, bufs, emit)
    elif _external_ok(value):
        emit(("copy", value.path, value.offset or 0, value.nbytes, value.name))
    elif _is_torch(value):
        from .. import dtypes

        emit(("bytes", _little(dtypes.torch_to_numpy(value.contiguous()))))
    else:
        a = value if isinstance(value, np.ndarray) else value.numpy()
        emit(("bytes", _little(a)))


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def _entry(key: str, value: Any) -> tuple[str, list[int], int]:
    """(safetensors dtype, shape, nbytes) from the metadata alone."""
    if _is_torch(value):
        from ..dtypes import from_torch_dtype

        dt = np.dtype(from_torch_dtype(value.dtype).numpy())
        shape = [int(d) for d in value.shape]
    else:
        dt = _np_dtype(value.base if isinstance(value, Transposed) else value)
        shape = _shape(value)
    st = _st_dtype(dt, key)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    itemsize = np.dtype(_WIDEN.get(dt.name, dt)).itemsize
    return st, shape, size * itemsize


def _write_all(fd: int, data) -> int:
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
    return done


def _copy_range(dst: int, path: str, offset: int, n: int, name: str) -> int:
    with open(path, "rb", buffering=0) as src:
        fd, left, pos = src.fileno(), n, offset
        while left:
            try:
                got = os.copy_file_range(fd, dst, min(left, 1 << 30), pos)
            except (AttributeError, OSError):
                got = os.write(dst, os.pread(fd, min(left, 1 << 24), pos))
            if got <= 0:
                raise ConversionError(f"tensor {name!r}: external data is shorter than its "
                                      "shape says")
            pos += got
            left -= got
    return n


def _items(state: dict, keys: list[str], bufs: _Buffers) -> Iterator:
    """The worker's output, in order, through a bounded queue (exceptions re-raised here)."""
    q: queue.Queue = queue.Queue(maxsize=_DEPTH)
    stop = bufs.stop

    def emit(item) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def work() -> None:
        try:
            for i, key in enumerate(keys):
                _produce(state[key], bufs, emit)
                emit(("end", i))
            emit(("done",))
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the writer, which raises it
            try:
                emit(("error", exc))
            except _Stopped:
                pass

    worker = threading.Thread(target=work, name="nnport-safetensors", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item[0] == "done":
                return
            if item[0] == "error":
                raise item[1]
            yield item
    finally:
        stop.set()
        worker.join()


def write_safetensors(state: dict[str, Any], path: str | os.PathLike,
                      metadata: dict[str, str] | None = None) -> None:
    """Write ``state`` (name -> numpy array, onnx_ir tensor, ``Transposed`` or torch tensor) to
    ``path``, tensor by tensor (never all tensors in memory at once).  ``metadata``: string
    entries for the header's ``__metadata__`` besides ``format``."""
    from .. import progress

    keys = sorted(state)
    header: dict[str, Any] = {"__metadata__": {"format": "pt", **(metadata or {})}}
    sizes = []
    offset = 0
    for key in keys:
        dtype, shape, nbytes = _entry(key, state[key])
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        sizes.append(nbytes)
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    # no O_TRUNC: on ext4 a file truncated to zero and rewritten is flushed to disk on close
    # (auto_da_alloc), which costs a large model about half a second; truncate at the end
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        _write_all(fd, struct.pack("<Q", len(text)))
        _write_all(fd, text)
        bufs = _Buffers(threading.Event())
        written = 0
        # closing the generator stops the worker on any error
        with contextlib.closing(_items(state, keys, bufs)) as items:
            for item in items:
                kind = item[0]
                if kind == "buf":
                    written += _write_all(fd, memoryview(item[1])[:item[2]])
                    bufs.free.put(item[1])
                elif kind == "bytes":
                    written += _write_all(fd, item[1])
                elif kind == "copy":
                    written += _copy_range(fd, *item[1:])
                else:  # ("end", i): tensor i is complete
                    i = item[1]
                    if written != sizes[i]:
                        raise ConversionError("internal error: tensor size mismatch while writing "
                                              f"{keys[i]!r} to {path}")
                    written = 0
                    progress.update("writing weights", i + 1, len(keys))
        os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))  # a longer file that was there ends here
    finally:
        os.close(fd)


def read_header(fh) -> tuple[dict, int]:
    """The JSON header of an open .safetensors file and where its data begins."""
    head = fh.read(8)
    if len(head) != 8:
        raise ValueError("not a .safetensors file (shorter than its header's length)")
    (n,) = struct.unpack("<Q", head)
    if n > 100 << 20:
        raise ValueError("not a .safetensors file (header length above 100 MB)")
    try:
        header = json.loads(fh.read(n))
    except ValueError:
        raise ValueError("not a .safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError("not a .safetensors file (its header is not a JSON object)")
    return header, 8 + n


def read_safetensors(path: str | os.PathLike) -> dict:
    """The tensors of a .safetensors file (as ``safetensors.torch.load_file`` gives them), each
    read into memory of its own.  ``load_file`` maps the whole file while it copies every
    tensor out: twice the weights' size at its end, where this holds them once."""
    import torch

    dtypes = {code: getattr(torch, name) for name, code in _ST_DTYPES.items()}
    out = {}
    with open(path, "rb") as fh:
        header, base = read_header(fh)
        header.pop("__metadata__", None)
        for name, info in header.items():
            start, end = info["data_offsets"]
            t = torch.empty(info["shape"], dtype=dtypes[info["dtype"]])
            view = memoryview(t.reshape(-1).view(torch.uint8).numpy())
            if len(view) != end - start or not pread_into(fh.fileno(), view, base + start):
                raise ValueError(f"tensor {name!r} does not fit its place in the file")
            out[name] = t
    return out
