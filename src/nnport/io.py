"""Loading and saving ONNX models, and atomic file output.

This is the only module that touches the protobuf ``onnx`` API directly.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

import onnx
import onnx_ir as ir

from . import limits
from .errors import InputError

ModelSource = Union[str, os.PathLike, onnx.ModelProto, ir.Model]


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


# Non-ONNX sources that convert to ONNX on load (e.g. TensorFlow/Keras through tf2onnx):
# (matches(path) -> bool, load(path) -> onnx.ModelProto).  See ``register_source``.
SOURCE_LOADERS: list[tuple] = []


def register_source(matches, loader) -> None:
    SOURCE_LOADERS.append((matches, loader))


def source_loader(src):
    """The loader for a non-ONNX source path, or None."""
    if not isinstance(src, (str, os.PathLike)):
        return None
    from .convert import _load_targets

    _load_targets()
    for matches, loader in SOURCE_LOADERS:
        if matches(Path(src)):
            return loader
    return None


def load_proto(src: ModelSource, *, load_external: bool = False) -> onnx.ModelProto:
    """Parse a model into a ModelProto with a clear one-line error for every bad input."""
    if isinstance(src, onnx.ModelProto):
        return src
    loader = source_loader(src)
    if loader is not None:
        proto = loader(Path(src))
        limits.check_proto(proto, str(src))
        return proto
    if isinstance(src, ir.Model):
        return ir.to_proto(src)
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


def load_model(src: ModelSource) -> ir.Model:
    """Load a model into onnx_ir; external data stays lazy (read when a tensor is used)."""
    if isinstance(src, ir.Model):
        return src
    if isinstance(src, onnx.ModelProto):
        limits.check_proto(src, describe(src))
        _check_external_data(src, Path.cwd(), describe(src))
        try:
            return ir.from_proto(src)
        except Exception as exc:
            raise InputError(f"{describe(src)}: cannot read model ({exc})") from None
    proto = load_proto(src)
    path = Path(src)
    if source_loader(src) is not None:
        path = path / "model.onnx" if path.is_dir() else path  # its folder is the base
    try:
        model = ir.from_proto(proto)
    except Exception as exc:
        raise InputError(f"{path}: cannot read model ({_one_line(exc)})") from None
    # External tensors, in any graph or attribute, are resolved relative to the model's folder.
    base = str(path.parent.resolve())
    for tensor in _ir_tensors(model):
        if isinstance(tensor, ir.ExternalTensor):
            tensor.base_dir = base
    return model


def _ir_tensors(model: ir.Model):
    from .irutil import iter_nodes

    graphs = [model.graph] + [a.value for n, _ in iter_nodes(model.graph)
                              for a in n.attributes.values() if a.type == ir.AttributeType.GRAPH]
    graphs += [g for n, _ in iter_nodes(model.graph) for a in n.attributes.values()
               if a.type == ir.AttributeType.GRAPHS for g in a.value]
    for g in graphs:
        for v in g.initializers.values():
            yield v.const_value
    for n, _ in iter_nodes(model.graph):
        for a in n.attributes.values():
            if a.type == ir.AttributeType.TENSOR:
                yield a.value
            elif a.type == ir.AttributeType.TENSORS:
                yield from a.value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when an output cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{path}: output folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise InputError(f"{path}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{path}: output folder {str(parent)!r} is not writable")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file name")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Write to a temporary file in the same folder, rename over ``path`` on success only."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def temp_path_beside(path: str | os.PathLike) -> str:
    """A fresh temporary file name in ``path``'s folder (for writers that want a file name)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    return tmp


def save_model(model: ir.Model | onnx.ModelProto, path: str | os.PathLike) -> None:
    """Save atomically; models whose tensors exceed 2 GB get an external-data file beside them."""
    path = check_output_path(path)
    proto = model if isinstance(model, onnx.ModelProto) else ir.to_proto(model)
    tmp = temp_path_beside(path)
    try:
        if proto.ByteSize() > 2**31 - 2**20:
            raise InputError(f"{path}: model above 2 GB must be saved with external data")
        with open(tmp, "wb") as fh:
            fh.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
