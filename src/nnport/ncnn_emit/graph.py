"""A small ncnn graph model: layers (type, name, bottoms, tops, numbered params, weights)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Weight:
    """One weight blob in the .bin.  ``flagged``: stored with a 4-byte storage-type tag (the
    ``type 0`` loads of ncnn's ModelBin: conv/innerproduct/rnn weights, may be fp16); otherwise
    raw float32 (``type 1``: bias, BatchNorm, LayerNorm, MemoryData...).  A flagged int8
    array is stored as int8 (tag 0x000D4B38), whatever the float storage chosen."""
    data: np.ndarray
    flagged: bool = False


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object] = field(default_factory=dict)
    weights: list[Weight] = field(default_factory=list)


class Graph:
    def __init__(self):
        self.layers: list[Layer] = []
        self._names: set[str] = set()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.output_layout: list[str] = []  # per output: "1", "0" or "m<N>" (Context.layout)
        self.notes: list[str] = []  # what the conversion chose (int8 or float32 layers)
        # blob -> the ncnn shape (c, d, h, w outermost first) its ONNX value declares; the
        # tests compare it with the shape ncnn computes (tests/ncnn_emit/models.py)
        self.declared: dict[str, tuple] = {}

    def unique(self, base: str) -> str:
        base = sanitize(base) or "blob"
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def add(self, type_: str, bottoms, tops, params=None, weights=None, name=None) -> Layer:
        layer = Layer(type_, name or self.unique(f"{type_.lower()}_{len(self.layers)}"),
                      list(bottoms), list(tops), dict(params or {}), list(weights or []))
        self.layers.append(layer)
        return layer

    def consumers(self) -> dict[str, list[Layer]]:
        out: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for b in layer.bottoms:
                out.setdefault(b, []).append(layer)
        return out

    def producer(self) -> dict[str, Layer]:
        return {t: layer for layer in self.layers for t in layer.tops}


def sanitize(name: str) -> str:
    """ncnn's text format splits on whitespace and reads names into 256-byte buffers."""
    if name.isprintable() and " " not in name:  # the common case, without a pass per char
        return name[:250]
    out = "".join("_" if (c.isspace() or not c.isprintable()) else c for c in name)
    return out[:250]
