"""The pass contract, one for every stage.

A pass is a callable ``pass_(model) -> onnx_ir.passes.PassResult``: it changes ``model`` in place
and returns ``PassResult(model, modified)``, ``modified`` saying whether it changed anything.
onnx_ir's own passes (``onnx_ir.passes.common.*Pass()``) are passes in this sense, and so is every
function in ``nnport/passes/<stage>/``, so a pipeline is a plain list mixing both, run by
``run_passes``.  Options are keyword arguments of the function (``fold_constants(model,
shape_inference=True)``); a pass that counts what it did keeps the count to itself.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import onnx_ir as ir
from onnx_ir.passes import PassResult

Pass = Callable[[ir.Model], PassResult]

__all__ = ["Pass", "PassResult", "run_passes"]


def run_passes(model: ir.Model, passes: Iterable[Pass], *, rounds: int = 1) -> PassResult:
    """Run ``passes`` on ``model`` in order; with ``rounds`` > 1, the whole list again while the
    last round changed the model, at most ``rounds`` times.  Every pass of a round runs."""
    passes = list(passes)
    modified = False
    for _ in range(rounds):
        changed = False
        for pass_ in passes:
            changed |= pass_(model).modified
        modified |= changed
        if not changed:
            break
    return PassResult(model, modified)
