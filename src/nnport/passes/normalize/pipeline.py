"""The normalization pipeline every target starts from."""
from __future__ import annotations

import contextlib

import onnx_ir as ir
from onnx_ir.passes import PassResult
from onnx_ir.passes import common as ir_common

from ...errors import InputError
from ..base import Pass, run_passes
from .castlike import castlike_to_cast
from .fold_constants import fold_constants
from .fold_scale import fold_scale
from .shapes import fold_static_dims, infer_shapes
from .noop import eliminate_noops
from .subgraph_shapes import relax_subgraph_shapes


def pipeline(*, fold: bool = True, infer: bool = True) -> list[Pass]:
    """The passes ``normalize`` runs, in order:

    - initializers listed as graph inputs (IR < 4) become plain weights;
    - model-local functions are inlined; CastLike with a known type becomes Cast;
    - declared shapes of loop-carried values and If outputs keep only the dims all their
      declarations agree on (``subgraph_shapes``), before any pass trusts one;
    - Constant nodes and constant subgraphs are folded into initializers (``fold``), constant
      per-channel Muls into the weights of the MatMul/Gemm/Conv before them;
    - dead nodes are dropped; shapes and dtypes are inferred where the spec allows (``infer``),
      and what the known shapes make constant is folded in a second round (``refold``).
    """
    passes: list[Pass] = [ir_common.RemoveInitializersFromInputsPass(), inline_functions,
                          castlike_to_cast, relax_subgraph_shapes]
    if fold:
        passes.append(fold_constants)
    passes.append(lift_constants)
    if fold:
        passes.append(fold_scale)
    passes += [ir_common.RemoveUnusedNodesPass(), ir_common.TopologicalSortPass()]
    if infer:
        passes.append(infer_shapes)
        if fold:
            passes.append(refold)
    return passes


def normalize(model: ir.Model, *, fold: bool = True, infer: bool = True) -> ir.Model:
    """Make a loaded model ready for the emitters: ``pipeline(fold=..., infer=...)`` in place;
    returns the model."""
    with _walkable():
        run_passes(model, pipeline(fold=fold, infer=infer))
    return model


def inline_functions(model: ir.Model) -> PassResult:
    """Model-local functions inlined (onnx_ir's InlinePass), when the model has any."""
    if not model.functions:
        return PassResult(model, False)
    return ir_common.InlinePass()(model)


def lift_constants(model: ir.Model) -> PassResult:
    """Every Constant node becomes an initializer."""
    return ir_common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)


@contextlib.contextmanager
def _walkable():
    """A malformed graph that the passes cannot walk: one InputError, not a traceback."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot normalize the model: {' '.join(str(exc).split())}") from None


def refold(model: ir.Model) -> PassResult:
    """With shapes known, Shape of a static dim is a constant: fold what hangs off it, inferring
    shapes node by node as the folder goes (an attention's 1/sqrt(head_dim) becomes a number
    the fusion takes; Swin's window padding becomes constant pads), then drop the no-ops that
    known shapes and constants reveal (a Pad by zeros, a Slice of everything)."""
    changed = False
    if any(n.op_type in ("Shape", "Size") for n in model.graph):
        fold_static_dims(model)
        fold_constants(model, shape_inference=True)
        lift_constants(model)
        changed = True
    if eliminate_noops(model).modified or changed:
        ir_common.RemoveUnusedNodesPass()(model)
        changed = True
    return PassResult(model, changed)
