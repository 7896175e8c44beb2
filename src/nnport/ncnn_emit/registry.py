"""The ncnn op registry: ``OPS[op_type] = fn(ctx, node)``, filled by ``@register`` as
``ncnn_emit/ops/__init__.py`` imports the op modules.  Imports nothing from the package."""
from __future__ import annotations

from typing import Callable

OPS: dict[str, Callable] = {}


def register(*op_types: str):
    def deco(fn):
        for t in op_types:
            OPS[t] = fn
        return fn

    return deco
