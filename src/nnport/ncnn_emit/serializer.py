"""Write ncnn's .param text and .bin weights (docs/developer-guide/param-and-model-file-structure.md).

.param: magic ``7767517``; ``layer_count blob_count``; one line per layer:
``Type name bottom_count top_count bottoms... tops... k=v ...``.  Arrays use the key
``-23300 - id`` with ``count,v1,v2...``; a float value always carries a ``.`` or ``e``.
.bin: weights in layer order.  Tagged weights begin with a 4-byte flag: 0 = float32 follows,
0x01306B47 = float16 follows (padded to 4 bytes), 0x000D4B38 = int8 follows (one byte a value,
padded to 4; the int8 layers' weights); untagged weights are raw float32.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..io import discard, temp_path_beside, written
from .graph import Graph

MAGIC = 7767517
FP16_TAG = 0x01306B47
INT8_TAG = 0x000D4B38


def has_fp16_weights(bin_path) -> bool:
    """Whether a .bin holds weights stored as float16 (``--fp16``): the fp16 tag begins a
    weight blob at a 4-byte boundary.  As a float32 the tag is 3.2e-38, which no trained or
    random weight is."""
    try:
        data = np.memmap(bin_path, dtype="<u4", mode="r")
    except (OSError, ValueError):
        return False
    return bool(data.size) and bool(np.any(data == FP16_TAG))


def _scalar(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    if not np.isfinite(f):
        f = 3.402823e38 if f > 0 else -3.402823e38
    return f"{f:.8e}"


def format_param(key: int, value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = list(value)
        return f"{-23300 - key}={len(vals)}" + "".join("," + _scalar(v) for v in vals)
    return f"{key}={_scalar(value)}"


def param_text(graph: Graph) -> str:
    blobs = set()
    for layer in graph.layers:
        blobs.update(layer.bottoms)
        blobs.update(layer.tops)
    lines = [str(MAGIC), f"{len(graph.layers)} {len(blobs)}"]
    for layer in graph.layers:
        parts = [f"{layer.type:<16}", f"{layer.name:<24}", str(len(layer.bottoms)),
                 str(len(layer.tops)), *layer.bottoms, *layer.tops]
        parts += [format_param(k, v) for k, v in sorted(layer.params.items())]
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def bin_chunks(graph: Graph, fp16: bool = False):
    """The .bin contents, weight by weight (buffers, not copies, where the data is float32)."""
    for layer in graph.layers:
        for w in layer.weights:
            if w.flagged and np.asarray(w.data).dtype == np.int8:
                raw = np.ascontiguousarray(w.data).tobytes()
                yield struct.pack("<I", INT8_TAG) + raw + b"\0" * ((-len(raw)) % 4)
                continue
            data = np.ascontiguousarray(w.data, dtype=np.float32).ravel()
            if not w.flagged:
                yield memoryview(data).cast("B")
            elif fp16:
                raw = data.astype(np.float16).tobytes()
                yield struct.pack("<I", FP16_TAG) + raw + b"\0" * ((-len(raw)) % 4)
            else:
                yield struct.pack("<I", 0)
                yield memoryview(data).cast("B")


def write(graph: Graph, param_path: str | os.PathLike, fp16: bool = False) -> tuple[Path, Path]:
    """Both files go to temp names first and are renamed only when both are complete."""
    param_path = Path(param_path)
    bin_path = param_path.with_suffix(".bin")
    text = param_text(graph)
    tmp_p = temp_path_beside(param_path)
    try:
        tmp_b = temp_path_beside(bin_path)
    except BaseException:
        discard(tmp_p)
        raise
    try:
        with open(tmp_p, "w", encoding="utf-8") as fh:
            fh.write(text)
        with open(tmp_b, "wb") as fh:
            for chunk in bin_chunks(graph, fp16):  # streamed: no second copy of the weights
                fh.write(chunk)
        os.replace(tmp_b, bin_path)
        os.replace(tmp_p, param_path)
    except BaseException:
        discard(tmp_p, tmp_b)
        raise
    written(param_path, bin_path)
    return param_path, bin_path
