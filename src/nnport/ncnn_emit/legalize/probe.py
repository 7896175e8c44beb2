"""Concrete shapes and shape-arithmetic values, from onnxruntime runs on the normalized model."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from ...errors import InputError
from ...io import to_proto_inline

STATIC_SOURCES = {"Shape", "Size"}


def static_values(model: ir.Model) -> set[str]:
    """Names of values known at conversion time: weights and everything computed from shapes."""
    known = set(model.graph.initializers)
    for node in model.graph:
        ins = [v for v in node.inputs if v is not None]
        if node.op_type in STATIC_SOURCES or (ins and all(v.name in known for v in ins)) or (
                not ins and node.op_type in ("Constant", "ConstantOfShape", "RandomNormal")):
            known.update(o.name for o in node.outputs)
    return known


def _concrete(specs, input_shapes: dict) -> dict[str, tuple]:
    shapes = {}
    for s in specs:
        given = (input_shapes or {}).get(s.name)
        if given is not None and all(isinstance(d, int) for d in given):
            shape = tuple(given)
            if s.shape is not None and len(shape) != len(s.shape):
                raise InputError(f"--input-shape {s.name}: {len(shape)} dims given, the model's "
                                 f"input has {len(s.shape)}")
        else:
            shape = []
            for i, d in enumerate(s.shape or ()):
                if isinstance(d, int):
                    shape.append(d)
                elif i == 0:
                    shape.append(1)  # the batch: ncnn runs one sample
                else:
                    raise InputError(
                        f"input {s.name!r} has a dynamic dim {i} ({d or '?'}); give it with "
                        f"--input-shape {s.name}=" + ",".join(
                            str(x) if isinstance(x, int) else ("1" if j == 0 else "N")
                            for j, x in enumerate(s.shape)))
            shape = tuple(shape)
        shapes[s.name] = shape
    return shapes


def _session(model: ir.Model, names: list[str]):
    """An onnxruntime session whose outputs are every value in ``names``.  Weights that are
    references into one model file stay there (onnxruntime reads them from that folder):
    the model is not copied into a second multi-MB protobuf."""
    import onnxruntime as ort

    from ...io import _ir_tensors

    folders = {t.base_dir for t in _ir_tensors(model) if isinstance(t, ir.ExternalTensor)}
    proto = ir.to_proto(model) if len(folders) <= 1 else to_proto_inline(model)
    have = {o.name for o in proto.graph.output}
    for n in names:
        if n not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=n))
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if len(folders) == 1:
        so.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                    str(next(iter(folders))))
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run(sess, feeds: dict) -> dict[str, np.ndarray]:
    outs = sess.run(None, feeds)
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


class Probe:
    """``shape[name]``: concrete shape; ``value[name]``: ndarray for static values;
    ``varies[name]``: bool mask of the static value's elements that change with the input size
    (``shape_varies[name]``: the same for the shape of any value)."""

    def __init__(self, model: ir.Model, specs, input_shapes: dict | None):
        from ...verify.inputs import random_inputs

        self.input_shapes = _concrete(specs, input_shapes or {})
        self.specs = specs
        # an input whose first dim is not 1 (an RNN state of two directions, a table) stays
        # whole in ncnn; layers that need a batch of 1 (convolutions, pooling) check for it
        names = [o.name for n in model.graph for o in n.outputs if o.name]
        self.static = static_values(model)
        feeds = random_inputs(specs, self.input_shapes, 0, None)
        try:
            sess = _session(model, names)
            vals = _run(sess, feeds)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"onnxruntime cannot run the model at input shapes "
                             f"{self.input_shapes}: {' '.join(str(exc).split())[:300]}") from None
        self.shape = {k: tuple(v.shape) for k, v in vals.items()}
        for k, shp in self.input_shapes.items():
            self.shape[k] = shp
        for name, v in model.graph.initializers.items():
            self.shape[name] = tuple(v.const_value.shape.numpy())
        self.value = {k: v for k, v in vals.items() if k in self.static}
        for name, v in model.graph.initializers.items():
            self.value[name] = v.const_value.numpy()
        self.varies: dict[str, np.ndarray] = {}
        self.shape_varies: dict[str, np.ndarray] = {}
        # A second run with every dynamic non-batch dim changed tells which numbers follow it.
        dyn = {s.name for s in specs if s.shape and any(
            not isinstance(d, int) for d in list(s.shape)[1:])}
        if not dyn:
            return
        alt = {}
        for s in specs:
            shp = list(self.input_shapes[s.name])
            if s.name in dyn:
                for i, d in enumerate(s.shape):
                    if i > 0 and not isinstance(d, int):
                        shp[i] = shp[i] * 2
            alt[s.name] = tuple(shp)
        try:
            vals2 = _run(sess, random_inputs(specs, alt, 1, None))
        except Exception:
            return  # the model does not run at another size: treat everything as static
        for k, v in vals2.items():
            a = self.value.get(k)
            if a is not None and a.shape == v.shape and a.dtype.kind in "iu":
                self.varies[k] = (a != v)
            if k in self.shape and len(self.shape[k]) == v.ndim:
                self.shape_varies[k] = np.array(self.shape[k]) != np.array(v.shape)
