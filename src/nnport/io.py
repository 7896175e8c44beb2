"""Loading and saving ONNX models: parse, check (limits, external data), load into onnx_ir with
weights mapped from their files, save.  The protobuf gateway: modules that may not import
``onnx`` (pyproject.toml's ruff rules) take ``ModelProto`` and the few protobuf operations they
need from here.

The two other jobs this module once had live beside it: the protobuf wire reader behind lazy
loading in ``skeleton.py``, atomic output in ``output.py`` (its names are re-exported here).
"""
from __future__ import annotations

import os
import re
import threading
import weakref
from pathlib import Path
from typing import Union

import numpy as np
import onnx
import onnx_ir as ir

from . import limits, skeleton
from .errors import InputError
from .irutil import ir_tensors as _ir_tensors
# atomic output lives in output.py; its names stay importable from here
from .output import _one_line, check_output_path, discard, temp_path_beside, written
from .output import atomic_output as atomic_output

ModelSource = Union[str, os.PathLike, onnx.ModelProto, ir.Model]

# The protobuf API as the rest of nnport uses it.  Only the modules pyproject.toml allows (ruff's
# TID251) import ``onnx`` themselves; everyone else takes the type and these operations from here.
ModelProto = onnx.ModelProto


def copy_proto(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy of a ModelProto (the caller's is never changed)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def proto_from_bytes(data: bytes) -> onnx.ModelProto:
    """A serialized model (e.g. what torch.onnx wrote into a buffer) as a ModelProto."""
    return onnx.load_from_string(data)


def check_model(proto: onnx.ModelProto) -> None:
    """onnx's checker (raises onnx.checker.ValidationError on an invalid model)."""
    onnx.checker.check_model(proto)


def attribute_types(op_type: str, domain: str, opset: int) -> dict[str, int]:
    """The attribute types (``AttributeProto`` enum values, as ``ir.AttributeType``) that ONNX's
    schema of ``op_type`` at ``opset`` declares; empty for ops it has no schema of."""
    key = (op_type, domain if domain != "ai.onnx" else "", opset)
    got = _ATTR_TYPES.get(key)
    if got is None:
        try:
            schema = onnx.defs.get_schema(op_type, opset, key[1])
            attrs = schema.attributes.items()
            got = {k: int(a.type.value) for k, a in attrs}  # type: ignore[attr-defined]
        except Exception:  # no such op (or domain) in onnx's registry
            got = {}
        _ATTR_TYPES[key] = got
    return got


_ATTR_TYPES: dict[tuple, dict[str, int]] = {}


def convert_version(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """onnx's version converter: ``proto`` at default-domain opset ``opset``."""
    from onnx import version_converter

    return version_converter.convert_version(proto, opset)


def describe(src: ModelSource) -> str:
    """A short name for a model source, used in messages."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, onnx.ModelProto):
        return f"<ModelProto {src.graph.name or 'graph'}>"
    if isinstance(src, ir.Model):
        return f"<ir.Model {src.graph.name or 'graph'}>"
    return repr(type(src))


def _all_tensors(proto: onnx.ModelProto):
    """Every TensorProto in the model: initializers and attribute tensors of every graph and
    subgraph and function, sparse values and indices included."""
    from onnx.external_data_helper import _get_all_tensors

    yield from _get_all_tensors(proto)

    def sparse(graph):
        for sp in graph.sparse_initializer:
            yield sp.values
            yield sp.indices
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    yield from sparse(attr.g)
                for g in attr.graphs:
                    yield from sparse(g)

    yield from sparse(proto.graph)


def _check_external_data(proto: onnx.ModelProto, base: Path, name: str) -> None:
    """Refuse external-data locations that are missing or escape the model's folder."""
    base = base.resolve()
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        target = (base / loc).resolve()
        if os.path.isabs(loc) or not str(target).startswith(str(base) + os.sep):
            raise InputError(
                f"{name}: tensor {tensor.name!r} has external data location {loc!r} "
                "outside the model's folder; refusing to read it"
            )
        if not target.is_file():
            raise InputError(
                f"{name}: external data file {loc!r} for tensor {tensor.name!r} not found "
                f"next to the model"
            )


def source_loader(src):
    """The loader for a non-ONNX source path (TensorFlow/Keras through tf2onnx: see
    ``formats.FORMATS``), or None."""
    if not isinstance(src, (str, os.PathLike)):
        return None
    from . import formats

    return formats.source_loader(src)


def load_proto(src: ModelSource, *, load_external: bool = False) -> onnx.ModelProto:
    """Parse a model into a ModelProto with a clear one-line error for every bad input."""
    if isinstance(src, onnx.ModelProto):
        return src
    loader = source_loader(src)
    if loader is not None:
        proto = loader(src)  # the source itself: it may carry the loader's options
        limits.check_proto(proto, str(src))
        return proto
    if isinstance(src, ir.Model):
        return to_proto_inline(src)
    if not isinstance(src, (str, os.PathLike)):
        raise InputError(f"expected a path or an onnx.ModelProto, got {type(src).__name__}")
    path = Path(src)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected an .onnx file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise InputError(f"{path}: file is empty")
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise InputError(f"{path}: not a valid ONNX model (protobuf parse failed: {exc})") from None
    finally:
        del data  # parse once, keep one copy
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise InputError(f"{path}: not a valid ONNX model (no graph found; truncated or not ONNX?)")
    if not proto.opset_import and proto.ir_version >= 3:
        raise InputError(f"{path}: not a valid ONNX model (no opset_import)")
    limits.check_proto(proto, str(path))
    _check_external_data(proto, path.parent, str(path))
    if load_external:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(path.parent))
        except Exception as exc:
            raise InputError(f"{path}: cannot load external data ({exc})") from None
    return proto


_OP_PREFIX = re.compile(r"^\(op_type:([^,)]*)(?:, node name: ([^)]*))?\): ")
_KIND_PREFIX = re.compile(r"^\[\w+\] (?:Inference error\(s\): )?")


def shape_problems(proto: onnx.ModelProto) -> list[str]:
    """Where the model's declared types and shapes disagree with what its nodes imply (onnx's
    shape inference in strict mode), one line per problem; [] for a consistent model."""
    if proto.ByteSize() > 2**31 - 2**20:
        return []  # onnx's inferencer cannot take a proto this large; nothing to report
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True,
                                          data_prop=True)
        return []
    except Exception as exc:
        return inference_error_lines(str(exc))


def inference_error_lines(text: str) -> list[str]:
    """onnx's inference error text (nested, several problems) as one line per problem, each
    naming its node."""
    def where(line: str) -> str:
        line = _KIND_PREFIX.sub("", line.strip())
        m = _OP_PREFIX.match(line)
        if not m:
            return line
        op, name = m.group(1), m.group(2)
        node = f"node {name!r} ({op})" if name else f"{'an' if op[:1] in 'AEIOU' else 'a'} {op} node"
        rest = _KIND_PREFIX.sub("", line[m.end():].strip())
        sub = " in its subgraph," if _OP_PREFIX.match(rest) else ""
        return f"{node}:{sub} {where(rest)}"

    problems = [" ".join(where(line).split()) for line in text.splitlines() if line.strip()]
    return problems or [" ".join(text.split())]


def _has_map(t: onnx.TypeProto) -> bool:
    kind = t.WhichOneof("value")
    if kind == "map_type":
        return True
    if kind == "sequence_type":
        return _has_map(t.sequence_type.elem_type)
    if kind == "optional_type":
        return _has_map(t.optional_type.elem_type)
    return False


def _without_map_types(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnx_ir cannot read map types (ai.onnx.ml's ZipMap returns seq(map)): such a declared
    type is dropped (the value keeps its name; nothing downstream needs the type).  The
    caller's proto is left as it is."""
    g = proto.graph
    vis = [*g.input, *g.output, *g.value_info]
    if not any(v.HasField("type") and _has_map(v.type) for v in vis):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for v in (*out.graph.input, *out.graph.output, *out.graph.value_info):
        if v.HasField("type") and _has_map(v.type):
            v.ClearField("type")
    return out


def owned_proto(src: ModelSource) -> onnx.ModelProto:
    """A ModelProto the caller may change: a path is parsed with its external data read in (so
    the result depends on no folder and is not parsed twice), a ModelProto is copied."""
    proto = load_proto(src, load_external=isinstance(src, (str, os.PathLike)))
    if proto is src:
        proto = onnx.ModelProto()
        proto.CopyFrom(src)
    return proto


def load_model(src: ModelSource, *, lazy: bool = False) -> ir.Model:
    """Load a model into onnx_ir; external data stays lazy (read when a tensor is used).

    ``lazy=True`` (for a path to a single-file model): large weights embedded in the file are
    not parsed into memory at all but become references into the file itself (memory-mapped
    when read), so loading a 1.3 GB model costs a few MB.  Such a model must not be serialized
    with ``ir.to_proto`` and handed on as bytes (its tensors point into the file): use it for
    conversion, or ``save_model`` (which inlines them)."""
    if isinstance(src, ir.Model):
        return src
    if isinstance(src, onnx.ModelProto):
        limits.check_proto(src, describe(src))
        _check_external_data(src, Path.cwd(), describe(src))
        try:
            return from_proto(_without_map_types(src))
        except Exception as exc:
            raise InputError(f"{describe(src)}: cannot read model ({exc})") from None
    proto = None
    path = Path(src)
    if lazy and source_loader(src) is None:
        proto = load_skeleton(src)
        if proto is not None:
            path = path.resolve()  # its tensors point into the real file, not a symlink's folder
    if proto is None:
        proto = load_proto(src)
    if source_loader(src) is not None:
        path = path / "model.onnx" if path.is_dir() else path  # its folder is the base
    try:
        model = ir.from_proto(_without_map_types(proto))
    except Exception as exc:
        raise InputError(f"{path}: cannot read model ({_one_line(exc)})") from None
    # External tensors, in any graph or attribute, are resolved relative to the model's folder.
    share_file_maps(model, str(path.parent.resolve()))
    return model


def from_proto(proto: onnx.ModelProto, base_dir: str | None = None) -> ir.Model:
    """``ir.from_proto`` whose external tensors share one mapping per file (see
    ``share_file_maps``); every ModelProto -> ir.Model conversion in nnport goes through here."""
    return share_file_maps(ir.from_proto(proto), base_dir)


# ----- one mapping per file, shared by every tensor that points into it -------------------------
# onnx_ir's ExternalTensor maps the WHOLE file when its data is first read, once per tensor, and
# keeps that mapping as long as the tensor lives: a model with N weights in one file of S bytes
# reads as N x S of address space (a 237 MB detector with 500 weights: 19.6 GB of VmPeak, which
# fails under ``ulimit -v``).  Here every tensor of a file reads through one read-only mapping,
# unmapped when the last tensor or array using it goes away.
_MAPS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_MAPS_LOCK = threading.Lock()


def _file_map(path: str):
    """The one read-only mapping of ``path`` (keyed by the file's identity, so a file replaced
    since is mapped afresh)."""
    import mmap

    real = os.path.realpath(path)
    with _MAPS_LOCK:
        with open(real, "rb") as fh:
            st = os.fstat(fh.fileno())
            key = (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            mm = _MAPS.get(key)
            if mm is None:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                _MAPS[key] = mm
        return mm


def pread_into(fd: int, view: memoryview, offset: int) -> bool:
    """Fill ``view`` with the bytes of ``fd`` from ``offset`` on; False when the file ends
    first."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n <= 0:
            return False
        got += n
    return True


class SharedExternalTensor(ir.ExternalTensor):
    """An ``ir.ExternalTensor`` that reads through the file's shared mapping (``_file_map``)
    instead of mapping the whole file for itself."""

    __slots__ = ()

    def _load(self):
        self._check_validity()
        self._check_path_containment()
        if self.size == 0:
            self._array = np.empty(self.shape.numpy(), dtype=self.dtype.numpy())
            return
        self.raw = _file_map(self.path)
        self._array = self._decode(self.raw, self.offset or 0)

    def _decode(self, buf, offset: int) -> np.ndarray:
        from onnx_ir import _type_casting

        bits = self.dtype.bitwidth
        if bits < 8:
            dt, count = np.dtype(np.uint8), self.nbytes  # packed: unpacked below
        else:
            dt, count = np.dtype(self.dtype.numpy()).newbyteorder("<"), self.size
        arr = np.frombuffer(buf, dtype=dt, offset=offset, count=count)
        shape = self.shape.numpy()
        unpack = {4: "unpack_4bitx2", 2: "unpack_2bitx4", 6: "unpack_6bit"}.get(bits)
        if unpack is not None:
            arr = getattr(_type_casting, unpack)(arr, shape).view(self.dtype.numpy())
        return arr.reshape(shape)

    def read(self) -> np.ndarray:
        """The value as an array of its own, read from the file (``pread``) unless this tensor
        is mapped already: reading one tensor costs its size, where ``numpy()`` maps the whole
        file and keeps the mapping while the tensor lives (for a reader that needs each weight
        once and briefly, e.g. a weight computed from it when it is read)."""
        if self._array is not None or self.size == 0:
            return self.numpy()
        self._check_validity()
        self._check_path_containment()
        buf = bytearray(self.nbytes)
        with open(self.path, "rb") as fh:
            if not pread_into(fh.fileno(), memoryview(buf), self.offset or 0):
                raise InputError(f"{self.path}: external data of tensor {self.name!r} is "
                                 "shorter than its shape says")
        return self._decode(buf, 0)

    def release(self) -> None:
        """Drop this tensor's references; the shared mapping closes with its last user."""
        self._array = None
        self.raw = None


def share_file_maps(model: ir.Model, base_dir: str | None = None) -> ir.Model:
    """Make every external tensor of ``model`` (any graph, attribute or subgraph) a
    ``SharedExternalTensor`` (same object, same data, no copy), resolving relative locations
    against ``base_dir`` when given.  Returns ``model``."""
    for tensor in _ir_tensors(model):
        if isinstance(tensor, ir.ExternalTensor):
            if base_dir is not None:
                tensor.base_dir = base_dir
            if type(tensor) is ir.ExternalTensor and tensor.raw is None:
                tensor.__class__ = SharedExternalTensor  # same slots: a layout-compatible swap
    return model


def release_tensors(model: ir.Model) -> None:
    """Let go of what the file-backed tensors of ``model`` have read (they read again when
    asked): the file's mapping closes once no array of it is left elsewhere."""
    for tensor in _ir_tensors(model):
        if isinstance(tensor, SharedExternalTensor):
            tensor.release()


def load_skeleton(src) -> onnx.ModelProto | None:
    """Parse ``src`` without its big weights (``skeleton.read_skeleton``; see
    ``load_model(lazy=True)``); None when the lean path does not apply (then the caller parses
    the file the ordinary way)."""
    data = skeleton.read_skeleton(src)
    if data is None:
        return None
    path = Path(src).resolve()
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception:
        return None
    del data
    if not proto.HasField("graph") or not proto.opset_import:
        return None
    limits.check_proto(proto, str(path))
    _check_external_data(proto, path.parent, str(path))
    return proto


_load_skeleton = load_skeleton  # the name it had


def to_proto_inline(model: ir.Model) -> onnx.ModelProto:
    """``ir.to_proto`` with every external tensor's data read into the proto (for consumers
    that take the model as bytes, where a file reference would dangle).  A node or tensor that
    onnx_ir read but cannot write (an unknown data type) is an InputError."""
    try:
        proto = ir.to_proto(model)
    except Exception as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise InputError(f"not a valid ONNX model ({_one_line(cause)})") from None
    ext = {t.name: t for t in _ir_tensors(model) if isinstance(t, ir.ExternalTensor)}
    if not ext:
        return proto
    for tp in _all_tensors(proto):
        if tp.data_location == onnx.TensorProto.EXTERNAL and tp.name in ext:
            tp.raw_data = ext[tp.name].tobytes()
            del tp.external_data[:]
            tp.data_location = onnx.TensorProto.DEFAULT
    return proto


def save_model(model: ir.Model | onnx.ModelProto, path: str | os.PathLike) -> None:
    """Save atomically; models whose tensors exceed 2 GB get an external-data file beside them."""
    from . import wire_save

    path = check_output_path(path)
    # a model whose weights point into a file is written from that file, tensor by tensor
    proto, parts = (model, []) if isinstance(model, onnx.ModelProto) else \
        wire_save.plan(model, to_proto_inline)
    tmp = temp_path_beside(path)
    try:
        if wire_save.total_size(proto, parts) > 2**31 - 2**20:
            raise InputError(f"{path}: model above 2 GB must be saved with external data")
        with open(tmp, "wb") as fh:
            wire_save.write(proto, parts, fh, _file_map)
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    written(path)


def check_lean_model(model: ir.Model) -> None:
    """onnx's checker on ``model`` without reading the weights that point into a file."""
    from . import wire_save

    onnx.checker.check_model(wire_save.checkable(model, to_proto_inline))
