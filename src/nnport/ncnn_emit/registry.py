"""The ncnn op registry: ``REGISTRY``, an ``nnport.registry.Registry`` keyed by (domain, op type,
since version) whose emitters are ``fn(ctx, node)``, filled by ``@register`` as
``ncnn_emit/ops/__init__.py`` imports the op modules.  Imports nothing from the package.

``register`` takes the spec versions each op type was reviewed against, one list per op type
(an emitter shared by several op types names each with its own list)::

    @register({"MaxPool": (1, 8, 10, 11, 12, 22), "AveragePool": (7, 10, 11, 19, 22)})

The first version listed is the oldest form the emitter reads: a model whose opset is below it
gets the pre-flight's "unsupported" listing.  Lookup (``REGISTRY.lookup(domain, op, opset)``)
picks the newest registration at or below the model's opset for that domain, and
``tests/test_registry.py`` fails when onnx's spec has a version of a registered op that no list
names.  nnport's private ops (the legalize passes' nodes) are registered in their own domain,
``passes.match.DOMAIN`` ("nnport"), version 1."""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from ..registry import Registry

REGISTRY = Registry("ncnn")


def register(ops: str | Mapping[str, Iterable[int] | int], versions: Iterable[int] | int = 1,
             domain: str = "") -> Callable:
    """Decorator: ``register("Op", (1, 13))`` or ``register({"OpA": (1, 13), "OpB": 7})``."""
    table = {ops: versions} if isinstance(ops, str) else dict(ops)

    def deco(fn):
        for op_type, vers in table.items():
            REGISTRY.register(op_type, vers, domain=domain)(fn)
        return fn

    return deco
