"""Write a model whose weights still live in another file without holding a copy of them.

A model loaded lean (``io.load_model(lazy=True)``) keeps its large weights as references into
the source file.  ``ir.to_proto`` + ``SerializeToString`` would read every one of them into the
protobuf and then copy the whole message into one bytes object: three copies of the weights
at the peak.  Here the message is written field by field (protobuf's wire format allows a
message's fields in any order): the small part of the model is serialized as usual, and each
main-graph initializer that points into a file is written as its header followed by its bytes,
copied from the file's shared read-only mapping straight into the output.  Lengths are
computed up front, so nothing larger than one tensor's header is ever built in memory.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO, Callable, cast

import onnx
import onnx_ir as ir

from .skeleton import encode_varint as _varint

if TYPE_CHECKING:
    import mmap

# nnport.io calls in with what it owns (inlining other external tensors, the shared file
# mappings): this module imports only the wire reader's encoder, so the two make no import cycle

_GRAPH_FIELD = 7  # ModelProto.graph
_INIT_FIELD = 5  # GraphProto.initializer
_RAW_FIELD = 9  # TensorProto.raw_data
_LEN = 2  # wire type: length-delimited


def _key(field: int) -> bytes:
    return _varint(field << 3 | _LEN)


class _Streamed:
    """One initializer written as header + raw bytes read from ``path`` at ``offset``."""

    __slots__ = ("header", "path", "offset", "length")

    def __init__(self, header: bytes, path: str, offset: int, length: int):
        self.header, self.path, self.offset, self.length = header, path, offset, length

    def body_size(self) -> int:
        return len(self.header) + len(_key(_RAW_FIELD)) + len(_varint(self.length)) + self.length

    def size(self) -> int:
        n = self.body_size()
        return len(_key(_INIT_FIELD)) + len(_varint(n)) + n


def plan(model: ir.Model, to_proto_inline: Callable[[ir.Model], onnx.ModelProto]
         ) -> tuple[onnx.ModelProto, list[_Streamed]]:
    """The model as a proto without its file-backed main-graph initializers (written by
    ``_Streamed`` parts); ``to_proto_inline`` serializes the rest with every other external
    tensor read in."""
    streamed = [(name, value) for name, value in model.graph.initializers.items()
                if isinstance(value.const_value, ir.ExternalTensor)
                and value.const_value.dtype.bitwidth >= 8 and value.const_value.size > 0]
    order = list(model.graph.initializers.values())
    for name, _ in streamed:
        model.graph.initializers.pop(name)
    try:
        proto = to_proto_inline(model)
    finally:  # the caller's model as it was, initializers in their order
        model.graph.initializers.clear()
        for value in order:
            model.graph.register_initializer(value)
    parts = []
    for name, value in streamed:
        t = cast(ir.ExternalTensor, value.const_value)  # as chosen above
        header = onnx.TensorProto(name=name, data_type=t.dtype.value)
        header.dims.extend(int(d) for d in t.shape.numpy())
        if t.doc_string:
            header.doc_string = t.doc_string
        path = os.path.join(t.base_dir, os.fspath(t.location))
        parts.append(_Streamed(header.SerializeToString(), path, int(t.offset or 0), t.nbytes))
    return proto, parts


def _field_size(field: int, n: int) -> int:
    return len(_key(field)) + len(_varint(n)) + n


def total_size(proto: onnx.ModelProto, parts: list[_Streamed]) -> int:
    """The serialized size of the model ``plan`` split into ``proto`` and ``parts``."""
    graph = proto.graph.ByteSize()
    rest = proto.ByteSize() - (_field_size(_GRAPH_FIELD, graph) if proto.HasField("graph") else 0)
    return rest + _field_size(_GRAPH_FIELD, graph + sum(p.size() for p in parts))


def write(proto: onnx.ModelProto, parts: list[_Streamed], fh: BinaryIO,
          file_map: Callable[[str], mmap.mmap | bytes]) -> None:
    """Serialize what ``plan`` returned into ``fh``, reading each part's bytes through
    ``file_map(path)`` (a buffer of the whole file).  ``proto`` loses its graph: it is the
    plan's own; a plain ModelProto with no parts is written as it is."""
    if not parts:
        fh.write(proto.SerializeToString())
        return
    graph = proto.graph.SerializeToString()
    proto.ClearField("graph")
    fh.write(proto.SerializeToString())
    fh.write(_key(_GRAPH_FIELD) + _varint(len(graph) + sum(p.size() for p in parts)))
    fh.write(graph)
    del graph
    for p in parts:
        fh.write(_key(_INIT_FIELD) + _varint(p.body_size()) + p.header)
        fh.write(_key(_RAW_FIELD) + _varint(p.length))
        view = memoryview(file_map(p.path))[p.offset:p.offset + p.length]
        try:
            if len(view) != p.length:
                raise OSError(f"{p.path}: shorter than the tensors that point into it")
            fh.write(view)
        finally:
            view.release()


def checkable(model: ir.Model, to_proto_inline: Callable[[ir.Model], onnx.ModelProto]
              ) -> onnx.ModelProto:
    """The model for ``onnx.checker`` without reading its file-backed weights: those become
    graph inputs of their type and shape (the checker would otherwise look for their file
    relative to the working directory)."""
    proto, parts = plan(model, to_proto_inline)
    have = {i.name for i in proto.graph.input}
    for p in parts:
        t = onnx.TensorProto.FromString(p.header)
        if t.name not in have:
            proto.graph.input.append(onnx.helper.make_tensor_value_info(
                t.name, t.data_type, list(t.dims)))
    return proto
