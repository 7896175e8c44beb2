"""The protobuf wire format of an .onnx file, read and rewritten without the protobuf library:
a model's *skeleton*, the same model with every large initializer's ``raw_data`` replaced by a
reference (offset, length) into the file itself, so that loading a 1.3 GB model costs a few MB.

Used by ``io.load_model(lazy=True)`` (``io.load_skeleton`` parses the result) and by
``verify/ort.py`` (onnxruntime reads the weights from the file).  Pure Python on bytes; no
import from nnport, no ``onnx``.
"""
from __future__ import annotations

import mmap
from pathlib import Path

# Wire format (protobuf): each field is a varint key (field_number << 3 | wire_type) then a
# varint (type 0), 8 bytes (1), a varint length + bytes (2) or 4 bytes (5).
# ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto.raw_data = 9,
# .external_data = 13 (StringStringEntryProto: key = 1, value = 2), .data_location = 14.
MIN_BYTES = 1024  # smaller tensors stay inline (not worth a reference)


def varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("bad varint")


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(buf, start: int, end: int):
    """(field number, wire type, field start, payload start, payload end) for each field."""
    pos = start
    while pos < end:
        fstart = pos
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            _, pos2 = varint(buf, pos)
            yield num, wt, fstart, pos, pos2
        elif wt == 1:
            pos2 = pos + 8
            yield num, wt, fstart, pos, pos2
        elif wt == 2:
            n, pos = varint(buf, pos)
            pos2 = pos + n
            yield num, wt, fstart, pos, pos2
        elif wt == 5:
            pos2 = pos + 4
            yield num, wt, fstart, pos, pos2
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if pos2 > end:
            raise ValueError("truncated field")
        pos = pos2


def _ld(num: int, payload: bytes) -> bytes:
    return encode_varint(num << 3 | 2) + encode_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    return _ld(13, _ld(1, key.encode()) + _ld(2, value.encode()))


def _skeleton_tensor(buf, start: int, end: int, location: str) -> bytes:
    parts, ref = [], None
    for num, wt, fstart, p0, p1 in fields(buf, start, end):
        if num == 9 and wt == 2 and p1 - p0 >= MIN_BYTES:
            ref = (p0, p1 - p0)
        elif num in (13, 14):
            return bytes(buf[start:end])  # already external: leave it alone
        else:
            parts.append(bytes(buf[fstart:p1]))
    if ref is None:
        return bytes(buf[start:end])
    parts.append(_entry("location", location) + _entry("offset", str(ref[0])) +
                 _entry("length", str(ref[1])))
    parts.append(encode_varint(14 << 3) + encode_varint(1))  # data_location = EXTERNAL
    return b"".join(parts)


def skeleton_bytes(buf, location: str) -> bytes | None:
    """The model with every large initializer's raw_data replaced by a reference into the
    file; None when nothing would change."""
    out, changed = [], False
    for num, wt, fstart, p0, p1 in fields(buf, 0, len(buf)):
        if num != 7 or wt != 2:
            out.append(bytes(buf[fstart:p1]))
            continue
        graph = []
        for gnum, gwt, gstart, q0, q1 in fields(buf, p0, p1):
            if gnum == 5 and gwt == 2:
                t = _skeleton_tensor(buf, q0, q1, location)
                changed = changed or len(t) != q1 - q0
                graph.append(_ld(5, t))
            else:
                graph.append(bytes(buf[gstart:q1]))
        out.append(_ld(7, b"".join(graph)))
    return b"".join(out) if changed else None


def read_skeleton(src) -> bytes | None:
    """The serialized skeleton of the single-file model at ``src``; None when the lean path does
    not apply (a small file, a hard-linked one, nothing to replace, or bytes that are not
    protobuf as expected: the ordinary parser then gives the error)."""
    try:
        path = Path(src).resolve()
        if not path.is_file() or path.stat().st_size < 1 << 20 or path.stat().st_nlink > 1:
            return None
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return skeleton_bytes(mm, path.name)
    except (OSError, ValueError, IndexError):
        return None
