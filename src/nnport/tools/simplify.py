"""Simplify an ONNX model, proving every step.

The passes run one at a time.  After each one that changed the model, the intermediate model is
compared with the input model in onnxruntime on seeded random inputs; a pass that makes the
outputs diverge (or breaks the model) is named and its change is discarded, and the next pass
starts from the last good model.
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx_ir as ir
from onnx_ir.passes import common as ir_common

from ..errors import InputError, NnportError
from ..io import (ModelProto, ModelSource, check_lean_model, check_output_path, describe,
                  from_proto, load_model, owned_proto, release_tensors, save_model,
                  to_proto_inline)
from ..passes.base import Pass, PassResult, run_passes
from ..passes.normalize.fold_constants import fold_constants
from ..passes.normalize.noop import eliminate_noops
from ..passes.normalize.shapes import infer_shapes
from ..passes.simplify.fuse_bn import fuse_bn_into_conv
from ..passes.simplify.shape_ops import fold_shape_ops

# What ``passes=``/``extra_passes=`` take: a pass (passes/base.py), or any function changing the
# model in place; its result is not read, the simplifier compares the model before and after.
PassFn = Callable[[ir.Model], object]


def _onnxscript_optimize(model: ir.Model) -> PassResult:
    from onnxscript.optimizer import optimize_ir

    optimize_ir(model, num_iterations=2, onnx_shape_inference=True, stop_if_no_change=True)
    return PassResult(model, True)  # onnxscript does not say; taken as changed


def _fold_constants(model: ir.Model) -> PassResult:
    return run_passes(model, [fold_constants, ir_common.LiftConstantsToInitializersPass(
        lift_all_constants=True, size_limit=0)])


def _fold_shapes(model: ir.Model) -> PassResult:
    if fold_shape_ops(model).modified:
        _fold_constants(model)
        return PassResult(model, True)
    return PassResult(model, False)


def _remove_dead(model: ir.Model) -> PassResult:
    return run_passes(model, [ir_common.RemoveUnusedNodesPass(),
                              ir_common.RemoveUnusedFunctionsPass(),
                              ir_common.RemoveUnusedOpsetsPass()])


def _cse(model: ir.Model) -> PassResult:
    return ir_common.CommonSubexpressionEliminationPass()(model)


# The simplifier's pipeline: (name, pass), in the order they run each round.
DEFAULT_PASSES: list[tuple[str, Pass]] = [
    ("onnxscript_optimize", _onnxscript_optimize),
    ("fold_constants", _fold_constants),
    ("fold_shape_ops", _fold_shapes),
    ("eliminate_noops", eliminate_noops),
    ("fuse_bn_into_conv", fuse_bn_into_conv),
    ("common_subexpressions", _cse),
    ("remove_dead_nodes", _remove_dead),
]


@dataclass
class StepResult:
    name: str
    round: int
    status: str  # applied | unchanged | diverged | failed
    detail: str = ""


@dataclass
class SimplifyResult:
    simplified: ir.Model | ModelProto  # an ir.Model's weights may point into the source
    before: collections.Counter
    after: collections.Counter
    steps: list = field(default_factory=list)
    verified: bool = True

    @property
    def model(self) -> ModelProto:
        """The simplified model as a self-contained ModelProto (weights read in)."""
        if isinstance(self.simplified, ModelProto):
            return self.simplified
        return to_proto_inline(self.simplified)

    @property
    def rejected(self) -> list[StepResult]:
        return [s for s in self.steps if s.status in ("diverged", "failed")]

    def to_dict(self) -> dict:
        return {"before": dict(self.before), "after": dict(self.after),
                "nodes_before": sum(self.before.values()),
                "nodes_after": sum(self.after.values()), "verified": self.verified,
                "steps": [s.__dict__ for s in self.steps]}

    def lines(self) -> list[str]:
        out = []
        for s in self.steps:
            if s.status == "unchanged":
                continue
            tag = {"applied": "applied", "diverged": "DIVERGED, change discarded",
                   "failed": "FAILED, change discarded"}[s.status]
            out.append(f"  pass {s.name} (round {s.round}): {tag}" +
                       (f": {s.detail}" if s.detail else ""))
        ops = sorted(set(self.before) | set(self.after),
                     key=lambda o: (-self.before.get(o, 0), o))
        width = max([len(o) for o in ops] + [2])
        out.append(f"  {'op':<{width}}  before  after")
        for op in ops:
            b, a = self.before.get(op, 0), self.after.get(op, 0)
            out.append(f"  {op:<{width}}  {b:>6}  {a:>5}" + ("" if a == b else "  *"))
        out.append(f"  {'total':<{width}}  {sum(self.before.values()):>6}  "
                   f"{sum(self.after.values()):>5}")
        return out


def op_counts(model: ir.Model | ModelProto) -> collections.Counter:
    if isinstance(model, ModelProto):
        nodes = model.graph.node
        return collections.Counter((f"{n.domain}::" if n.domain not in ("", "ai.onnx") else "")
                                   + n.op_type for n in nodes)
    return collections.Counter((f"{n.domain}::" if n.domain not in ("", "ai.onnx") else "")
                               + n.op_type for n in model.graph)


def fix_input_shapes(model: ir.Model, input_shapes: dict | None, *,
                     symbolic: bool = False) -> None:
    """Give graph inputs the shapes asked for.  None in a shape keeps that dim as it was, or,
    with ``symbolic=True`` (edit mode), makes it a symbolic dim (kept if it already was one)
    and lets fixed dims change."""
    if not input_shapes:
        return
    inputs = {v.name: v for v in model.graph.inputs}
    for name, dims in input_shapes.items():
        if name not in inputs:
            raise InputError(f"--input-shape {name}: the model has no input {name!r} "
                             f"(inputs: {', '.join(sorted(inputs)) or 'none'})")
        v = inputs[name]
        old = list(v.shape.dims) if v.shape is not None else [None] * len(dims)
        if len(old) != len(dims):
            raise InputError(f"--input-shape {name}: model input has rank {len(old)}, "
                             f"got {len(dims)} dims {list(dims)}")
        new = []
        for i, (o, d) in enumerate(zip(old, dims)):
            if d is None:
                keep = o is not None and not (symbolic and isinstance(o, int))
                new.append(o if keep else ir.SymbolicDim(f"{name}_dim{i}"))
            else:
                if isinstance(o, int) and o != d and not symbolic:
                    raise InputError(f"--input-shape {name}: dim {d} does not fit the "
                                     f"model's static shape {old}")
                new.append(d)
        v.shape = ir.Shape(new)
    for node in model.graph:  # stale intermediate shapes would hide the new facts
        for out in node.outputs:
            if not out.is_graph_output():
                out.shape = None


def _resolve_passes(passes) -> list[tuple[str, PassFn]]:
    out = []
    for p in passes:
        if isinstance(p, tuple):
            out.append((str(p[0]), p[1]))
        elif callable(p):
            out.append((getattr(p, "__name__", repr(p)), p))
        else:
            raise InputError(f"simplify: a pass must be a function or (name, function), "
                             f"got {type(p).__name__}")
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def simplify(src: ModelSource, dst: str | os.PathLike | None = None, *,
             input_shapes: dict | None = None, passes=None, extra_passes=(),
             verify: bool = True, seed: int = 0, rtol: float | None = None,
             atol: float | None = None, rounds: int = 2,
             log: Callable[[str], None] | None = None) -> SimplifyResult:
    """Simplify ``src``; write ``dst`` (atomically) when given.  ``passes`` replaces the default
    pass list, ``extra_passes`` appends to it (functions or (name, function) pairs that modify an
    ir.Model in place)."""
    from ..verify import verify as run_verify

    if dst is not None:
        check_output_path(dst)
    steps_list = _resolve_passes(DEFAULT_PASSES if passes is None else passes)
    steps_list += _resolve_passes(extra_passes)
    # A plain .onnx path is read lean: its large weights stay references into the file through
    # every pass (a pass that computes a tensor makes a new one), onnxruntime maps them from
    # the file when verifying, and the result is written from the file tensor by tensor.
    model = _lean(src)
    if model is not None:
        base = str(Path(src).resolve().parent)
        original: ModelSource = src
        as_model = lambda proto: from_proto(proto, base)
    else:
        original = owned_proto(src)
        model = load_model(original)
        as_model = from_proto
    before = op_counts(model)
    try:
        ir_common.RemoveInitializersFromInputsPass()(model)
    except Exception:
        pass
    fix_input_shapes(model, input_shapes)
    infer_shapes(model)
    try:
        current = ir.to_proto(model)
    except Exception as exc:  # a malformed node onnx_ir read but cannot write (fuzz)
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise InputError(f"{describe(src)}: not a valid ONNX model ({cause})") from None
    shapes = {k: tuple(v) for k, v in (input_shapes or {}).items()}

    def check(cand: ModelProto) -> tuple[bool, str]:
        try:
            rep = run_verify(original, as_model(cand), input_shapes=shapes, seed=seed, rtol=rtol,
                             atol=atol)
        except NnportError as exc:
            return False, _one_line(exc)
        if rep.ok:
            worst = max((o.max_rel_err for o in rep.outputs), default=0.0)
            return True, f"max_rel={worst:.3g}"
        bad = [o for o in rep.outputs if not o.ok]
        return False, "; ".join(f"output {o.name} max_abs={o.max_abs_err:.3g} "
                                f"max_rel={o.max_rel_err:.3g}" + (f" ({o.note})" if o.note else "")
                                for o in bad)

    if verify:
        ok, detail = check(current)
        if not ok:
            raise InputError(f"simplify: the model with the given input shapes does not "
                             f"reproduce the input model in onnxruntime ({detail})")
    result = SimplifyResult(current, before, before)
    for rnd in range(1, max(1, rounds) + 1):
        changed_round = False
        for name, fn in steps_list:
            cand_model = as_model(current)
            try:
                fn(cand_model)
                infer_shapes(cand_model)
                cand = ir.to_proto(cand_model)
            except Exception as exc:
                step = StepResult(name, rnd, "failed", f"{type(exc).__name__}: {_one_line(exc)}")
                result.steps.append(step)
                if log:
                    log(f"pass {name}: failed ({step.detail}); change discarded")
                continue
            finally:
                # the weights the pass read are let go, with the file's mapping: not held
                # while onnxruntime maps them again to check the result
                release_tensors(cand_model)
            if cand.SerializeToString(deterministic=True) == current.SerializeToString(
                    deterministic=True):
                result.steps.append(StepResult(name, rnd, "unchanged"))
                continue
            if verify:
                ok, detail = check(cand)
            else:
                try:
                    check_lean_model(as_model(cand))
                    ok, detail = True, "not verified"
                except Exception as exc:
                    ok, detail = False, _one_line(exc)
            if ok:
                current = cand
                changed_round = True
                result.steps.append(StepResult(name, rnd, "applied", detail))
            else:
                result.steps.append(StepResult(name, rnd, "diverged", detail))
                if log:
                    log(f"pass {name}: outputs diverge ({detail}); change discarded")
        if not changed_round:
            break
    result.simplified = as_model(current)
    result.after = op_counts(current)
    result.verified = verify
    if dst is not None:
        save_model(result.simplified, dst)
    return result


def _lean(src: ModelSource) -> ir.Model | None:
    """``src`` loaded with its large weights left in the file, for a plain .onnx path."""
    from ..io import source_loader

    if not isinstance(src, (str, os.PathLike)) or source_loader(src) is not None:
        return None
    path = Path(src)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return None
    return load_model(src, lazy=True)
