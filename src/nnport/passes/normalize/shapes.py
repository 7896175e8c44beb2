"""Shape and dtype inference with onnx's inferencer; never fatal (emitters cope with unknowns)."""
from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult
from onnx_ir.passes import common as ir_common

from ...irutil import const_array, iter_nodes, replace_with_constant, shape_op_dims


SHAPE_FAILURE_KEY = "nnport.shape_inference_failed"


_MAP_OUTPUT_OPS = {"ZipMap", "CastMap", "DictVectorizer"}


def infer_shapes(model: ir.Model) -> PassResult:
    """Never fatal.  onnx_ir's pass logs a failure with a traceback on stderr (the lastResort
    handler prints it when the application configured no logging): we silence that logger and
    keep the one-line reason in ``model.meta[SHAPE_FAILURE_KEY]`` (``nnport inspect`` shows it)."""
    logger = logging.getLogger(ir_common.ShapeInferencePass.__module__)
    failures: list[str] = []

    class _Keep(logging.Filter):
        def filter(self, record):
            exc = record.exc_info[1] if record.exc_info else None
            failures.append(" ".join(str(exc or record.getMessage()).split()))
            return False  # never printed

    class _Untyped(logging.Filter):
        # serializing for onnx's inference skips a subgraph value nobody typed; inference
        # types it (or leaves it unknown), nothing for the user to act on
        def filter(self, record):
            return not str(record.msg).startswith("The value type for shape")

    keep, untyped = _Keep(), _Untyped()
    serde_logger = logging.getLogger(ir.serde.__name__)
    logger.addFilter(keep)
    serde_logger.addFilter(untyped)
    # ai.onnx.ml's map-typed outputs (ZipMap...) cannot come back into onnx_ir: onnx does not
    # see those nodes (an unknown domain) while it infers, and their outputs stay untyped
    hidden = [(n, n.domain) for n, _ in iter_nodes(model.graph)
              if n.domain == "ai.onnx.ml" and n.op_type in _MAP_OUTPUT_OPS]
    for n, _ in hidden:
        n.domain = "nnport.hidden"
    if hidden:
        model.opset_imports["nnport.hidden"] = 1
    modified = False
    try:
        modified = ir_common.ShapeInferencePass(check_type=False, strict_mode=False,
                                                data_prop=True)(model).modified
    except Exception as exc:
        failures.append(" ".join(str(exc).split()))
    finally:
        logger.removeFilter(keep)
        serde_logger.removeFilter(untyped)
        for n, dom in hidden:
            n.domain = dom
        if hidden:
            model.opset_imports.pop("nnport.hidden", None)
    if failures:
        model.meta[SHAPE_FAILURE_KEY] = failures[0]
    else:
        model.meta.pop(SHAPE_FAILURE_KEY, None)
    return PassResult(model, modified)


def _shape_dims(node: ir.Node) -> list | None:
    """The dims a Shape node outputs (ints or symbols), from its input's inferred shape."""
    x = node.inputs[0] if node.inputs else None
    if x is None or x.shape is None:
        return None
    return shape_op_dims(node, list(x.shape.dims))


def _picked(use: ir.Node, dims: list) -> list | None:
    """The dims a Slice / Gather (axis 0, constant indices) takes from a shape vector."""
    n = len(dims)
    if use.op_type == "Gather" and len(use.inputs) == 2:
        axis = use.attributes.get("axis")
        idx = const_array(use.inputs[1])
        if (axis is not None and axis.value != 0) or idx is None or idx.ndim > 1:
            return None
        if any(not -n <= int(i) < n for i in idx.reshape(-1)):
            return None
        picked = [dims[int(i)] for i in idx.reshape(-1)]
        return picked if idx.ndim == 1 else picked[0]  # a scalar index gives a scalar
    if use.op_type == "Slice" and len(use.inputs) >= 3:
        arrs = [const_array(v) if v is not None else None for v in use.inputs[1:5]]
        starts, ends = arrs[0], arrs[1]
        axes = arrs[2] if len(arrs) > 2 else None
        steps = arrs[3] if len(arrs) > 3 else None
        if starts is None or ends is None or starts.size != 1 or ends.size != 1:
            return None
        if (len(use.inputs) > 3 and use.inputs[3] is not None and axes is None) or \
                (len(use.inputs) > 4 and use.inputs[4] is not None and steps is None):
            return None  # axes/steps given but not constant
        if axes is not None and int(axes.reshape(-1)[0]) not in (0, -1):
            return None
        step = 1 if steps is None else int(steps.reshape(-1)[0])
        if step == 0:
            return None
        return dims[slice(int(starts[0]), int(ends[0]), step)]  # Python clamps like ONNX
    return None


def fold_static_dims(model: ir.Model) -> PassResult:
    """``Shape(x)`` followed by a Slice or Gather that picks only static dims of ``x`` becomes
    a constant, even where other dims of ``x`` are symbolic (the head size of an attention whose
    batch and sequence are dynamic)."""
    graph = model.graph
    changed = False
    for node in list(graph):
        if node.op_type != "Shape" or node.domain not in ("", "ai.onnx"):
            continue
        dims = _shape_dims(node)
        if dims is None:
            continue
        for use, _ in list(node.outputs[0].uses()):
            if use.domain not in ("", "ai.onnx") or use.graph is not graph:
                continue
            picked = _picked(use, dims)
            if picked is None:
                continue
            flat = picked if isinstance(picked, list) else [picked]
            if not all(isinstance(d, int) for d in flat):
                continue
            replace_with_constant(graph, use.outputs[0], np.array(picked, dtype=np.int64),
                                  f"{use.name}_value")
            graph.remove(use, safe=True)
            changed = True
    return PassResult(model, changed)
