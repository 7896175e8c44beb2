"""The normalization pipeline every target starts from."""
from __future__ import annotations

import contextlib

import onnx_ir as ir
from onnx_ir.passes import common as ir_common

from ...errors import InputError
from .castlike import castlike_to_cast
from .fold_constants import fold_constants
from .fold_scale import fold_scale
from .shapes import fold_static_dims, infer_shapes
from .noop import eliminate_noops
from .subgraph_shapes import relax_subgraph_shapes


def normalize(model: ir.Model, *, fold: bool = True, infer: bool = True) -> ir.Model:
    """Make a loaded model ready for the emitters (in place; returns it).

    - initializers listed as graph inputs (IR < 4) become plain weights;
    - declared shapes of loop-carried values and If outputs keep only the dims all their
      declarations agree on (``subgraph_shapes``);
    - model-local functions are inlined;
    - Constant nodes and constant subgraphs are folded into initializers;
    - dead nodes are dropped; shapes and dtypes are inferred where the spec allows, and what
      the known shapes make constant is folded in a second round.
    """
    with _walkable():
        ir_common.RemoveInitializersFromInputsPass()(model)
        if model.functions:
            ir_common.InlinePass()(model)
        castlike_to_cast(model)
        relax_subgraph_shapes(model)  # before any pass trusts a loop-carried declaration
        if fold:
            fold_constants(model)
        ir_common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
        if fold:
            fold_scale(model)  # constant per-channel Mul -> weights of the MatMul/Gemm/Conv
        ir_common.RemoveUnusedNodesPass()(model)
        ir_common.TopologicalSortPass()(model)
    if infer:
        infer_shapes(model)
        if fold:
            with _walkable():
                _refold(model)
    return model


@contextlib.contextmanager
def _walkable():
    """A malformed graph that the passes cannot walk: one InputError, not a traceback."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot normalize the model: {' '.join(str(exc).split())}") from None


def _refold(model: ir.Model) -> None:
    """With shapes known, Shape of a static dim is a constant: fold what hangs off it, inferring
    shapes node by node as the folder goes (an attention's 1/sqrt(head_dim) becomes a number
    the fusion takes; Swin's window padding becomes constant pads), then drop the no-ops that
    known shapes and constants reveal (a Pad by zeros, a Slice of everything)."""
    changed = False
    if any(n.op_type in ("Shape", "Size") for n in model.graph):
        fold_static_dims(model)
        fold_constants(model, shape_inference=True)
        ir_common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
        changed = True
    if eliminate_noops(model) or changed:
        ir_common.RemoveUnusedNodesPass()(model)
