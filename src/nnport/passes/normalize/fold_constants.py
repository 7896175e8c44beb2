"""Fold weight-producing subgraphs into plain tensors.

Real exports compute weights with Identity (torch's de-duplication), Constant, ConstantOfShape,
Cast, Reshape, Transpose or DequantizeLinear of constants.  onnxscript's folder does the work;
we lift its size limits (weights are large by nature) and restrict it to the ops that compute
weights and shapes (``_FOLD``): random generators must not be frozen, and other ops are better
left to the emitters than to onnx's reference evaluator.  When onnxscript's folder itself fails on a graph
(it has op-specific rewrites that can crash on unusual inputs), a plain node-by-node folder
using onnx's reference evaluator takes over, so a folder bug never blocks a conversion.
"""
from __future__ import annotations

import logging

import onnx
import onnx_ir as ir
from onnx_ir.passes import PassResult
from onnxscript.optimizer import _constant_folding

from ... import limits
from ...errors import InputError
from ...irutil import replace_with_constant

# What we fold: the ops exporters use to compute weights and shapes from constants.  Other ops
# with constant inputs are left for the emitters: folding evaluates them with onnx's reference
# implementation, which is not always right on unusual inputs (the fuzzer found GlobalMaxPool
# on a rank-3 tensor folded to the wrong shape), and real models rarely need them folded.
_FOLD = {
    "Identity", "Constant", "ConstantOfShape", "Cast", "CastLike", "Reshape", "Transpose",
    "Squeeze", "Unsqueeze", "Flatten", "Concat", "Split", "Slice", "Gather", "Shape", "Size",
    "Expand", "Tile", "Range", "DequantizeLinear", "QuantizeLinear", "Add", "Sub", "Mul", "Div",
    "Neg", "Abs", "Sqrt", "Reciprocal", "Pow", "Exp", "Log", "Floor", "Ceil", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Where", "Min", "Max", "Sum",
    "Clip", "MatMul", "Gemm", "ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin", "Sign",
    "Mod", "Pad", "ScatterND", "ScatterElements", "Trilu", "Einsum", "OneHot", "EyeLike",
    "SequenceConstruct", "SequenceAt", "SplitToSequence", "ConcatFromSequence", "Optional",
    "OptionalGetElement", "BitShift",
}
# Large limits: a ConstantOfShape that makes a 100M-element fc weight must fold too.
_SIZE_LIMIT = 1 << 40
# ...but an op that makes a tensor much larger than its operands is not folded beyond 2**28
# elements (1 GiB of float32): storing it would take gigabytes of memory and file, and filling
# it seconds to minutes; it is computed at run time instead (the fuzzer's 1.6e9-element
# ConstantOfShape took 39 s to fold, then Expand and Add copied it twice more).
_GROWING = {"ConstantOfShape", "Expand", "Tile", "Range", "OneHot", "EyeLike", "Pad"}
_FOLD_MAX_GROWN = 1 << 28


def _should_fold(node: ir.Node) -> bool | None:
    # The folder only asks once every input is constant; we then always fold (weights are
    # large by nature; onnxscript's default keeps ConstantOfShape/DequantizeLinear unfolded).
    # Sizes are checked first: a constant ConstantOfShape/Expand/Tile/Range must not allocate
    # terabytes.
    limits.check_node(node)
    if node.op_type in _GROWING:
        n = limits.node_output_elements(node)
        if n is not None and n > _FOLD_MAX_GROWN:
            return False  # computed where it is used (torch.full, expand), not stored
    return node.op_type in _FOLD and node.domain in ("", "ai.onnx")


def fold_constants(model: ir.Model, *, shape_inference: bool = False) -> PassResult:
    """Fold in place.  ``shape_inference=True``: onnx's shape inference runs on each node as
    the folder walks the graph, so a shape that becomes known (a Pad whose pads were just
    folded) makes the next Shape node a constant in the same walk."""
    snapshot = model.clone()  # shares tensors: cheap even for large models
    # onnxscript logs every node it declines to fold; that is not news for our users
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    try:
        result = _constant_folding.fold_constants(
            model,
            onnx_shape_inference=shape_inference,
            input_size_limit=_SIZE_LIMIT,
            output_size_limit=_SIZE_LIMIT,
            should_fold=_should_fold,
        )
        return PassResult(model, bool(result.modified))
    except InputError:
        raise
    except Exception:
        # onnxscript may have changed the graph before failing: start again from the snapshot
        _copy_into(model, snapshot)
    return fold_simple(model)


def _copy_into(model: ir.Model, fresh: ir.Model) -> None:
    model.graph = fresh.graph
    model.functions.clear()
    model.functions.update(fresh.functions)


def _is_constant_node(node: ir.Node) -> bool:
    if node.op_type not in _FOLD or node.domain not in ("", "ai.onnx"):
        return False
    if any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
           for a in node.attributes.values()):
        return False
    return all(v is None or v.const_value is not None for v in node.inputs)


def fold_simple(model: ir.Model) -> PassResult:
    """Evaluate, in topological order, every main-graph node whose inputs are all constant."""
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    opset = model.opset_imports.get("", 1)
    changed = False
    for node in list(graph):
        if not _is_constant_node(node) or not _should_fold(node):
            continue
        names = [f"i{i}" if v is not None else "" for i, v in enumerate(node.inputs)]
        outs = [f"o{i}" for i in range(len(node.outputs))]
        proto = ir.to_proto(node)
        del proto.input[:]
        proto.input.extend(names)
        del proto.output[:]
        proto.output.extend(outs)
        feeds = {n: v.const_value.numpy() for n, v in zip(names, node.inputs) if v is not None}
        try:
            g = onnx.helper.make_graph(
                [proto], "fold",
                [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(
                    feeds[n].dtype), feeds[n].shape) for n in names if n],
                [onnx.helper.make_empty_tensor_value_info(o) for o in outs])
            m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)])
            results = ReferenceEvaluator(m).run(None, feeds)
        except Exception:
            continue  # not foldable here: the emitter converts it instead
        for i, (out, arr) in enumerate(zip(node.outputs, results)):
            replace_with_constant(graph, out, arr, f"{node.name}_value{i}")
        graph.remove(node, safe=True)
        changed = True
    return PassResult(model, changed)
