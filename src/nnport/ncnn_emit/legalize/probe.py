"""Concrete shapes and shape-arithmetic values of the normalized model, by shape inference."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from ...errors import InputError
from ...io import to_proto_inline
from ...irutil import tensor_array

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


_POOLS = {"MaxPool", "AveragePool", "LpPool"}


def _ceil_pool_shape(node: ir.Node, x: tuple, inferred: tuple) -> tuple:
    """A pooling output's shape with ceil_mode=1 as runtimes compute it at every opset: a
    window that would start in the end padding is dropped (onnx's shape inference applies
    that only from opset 22, onnxruntime and torch always do: MaxPool k=2 s=3 p=1 on 8 gives
    3, not 4)."""
    a = node.attributes
    get = lambda k, d: a[k].value if a.get(k) is not None else d
    auto = get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if not get("ceil_mode", 0) or auto not in ("NOTSET", "VALID") or len(inferred) != len(x):
        return inferred
    nsp = len(x) - 2
    k = list(get("kernel_shape", [1] * nsp))
    st = list(get("strides", [1] * nsp))
    dil = list(get("dilations", [1] * nsp))
    pads = list(get("pads", [0] * (2 * nsp))) if auto == "NOTSET" else [0] * (2 * nsp)
    if len(k) != nsp or len(st) != nsp or len(dil) != nsp or len(pads) != 2 * nsp:
        return inferred
    out = list(inferred)
    for i in range(nsp):
        span = x[2 + i] + pads[i] + pads[nsp + i] - dil[i] * (k[i] - 1) - 1
        n = -(-span // st[i]) + 1
        if (n - 1) * st[i] >= x[2 + i] + pads[i]:
            n -= 1
        out[2 + i] = n
    return tuple(out)


def _type_proto(dtype: int, shape) -> onnx.TypeProto:
    return onnx.helper.make_tensor_type_proto(int(dtype), list(shape))


_DATA_LIMIT = 1 << 16  # constant inputs up to this many elements are shown to shape inference


class _Walk:
    """Shapes and static values of every value at given input shapes, computed without running
    the model: ONNX's per-node shape inference (``infer_node_outputs``, fed the constant inputs
    it needs) in graph order, and the reference implementation of each op for the values that
    depend only on shapes and weights (``Shape``, ``Gather`` of it, ``Concat``...)."""

    def __init__(self, model: ir.Model, static: set[str], input_shapes: dict, specs):
        self.opsets = [onnx.helper.make_opsetid(d, v) for d, v in model.opset_imports.items()]
        self.opset_map = dict(model.opset_imports)
        self._evaluators: dict[bytes, object] = {}  # node form -> onnx ReferenceEvaluator
        self.shape: dict[str, tuple] = {}
        self.dtype: dict[str, int] = {}
        self.value: dict[str, np.ndarray] = {}
        # value name -> (node, op type, message): the node that makes it (or an input of it)
        # and what ONNX shape inference says against it
        self.rejected: dict[str, tuple[str, str, str]] = {}
        self.static = static
        for s in specs:
            self.shape[s.name] = tuple(input_shapes[s.name])
            v = next(i for i in model.graph.inputs if i.name == s.name)
            self.dtype[s.name] = int(v.dtype) if v.dtype is not None else onnx.TensorProto.FLOAT
        for name, v in model.graph.initializers.items():
            t = v.const_value
            self.shape[name] = tuple(int(d) for d in t.shape.numpy())
            self.dtype[name] = int(t.dtype)
            if t.size <= _DATA_LIMIT or int(t.dtype) in _INT_TYPES:
                self.value[name] = tensor_array(t, name)
        self.model = model
        for node in model.graph:
            self._node(node)

    def weight(self, name):
        """A static value, loading large weights only when asked."""
        if name in self.value:
            return self.value[name]
        v = self.model.graph.initializers.get(name)
        return None if v is None else tensor_array(v.const_value, name)

    def _node(self, node: ir.Node):
        outs = [o for o in node.outputs if o.name]
        if not outs:
            return
        ins = [v for v in node.inputs if v is not None and v.name]
        if all(o.name in self.static for o in outs) and self._evaluate(node):
            return
        if any(v.name not in self.shape for v in ins):
            why = next((self.rejected[v.name] for v in ins if v.name in self.rejected), None)
            if why is not None:
                self.rejected.update((o.name, why) for o in outs)
            self._fallback(outs)
            return
        try:
            proto = ir.serde.serialize_node(node)
            schema = onnx.defs.get_schema(node.op_type, self.opset_map.get(node.domain, 1),
                                          node.domain if node.domain != "ai.onnx" else "")
            types = {v.name: _type_proto(self.dtype.get(v.name, 1), self.shape[v.name])
                     for v in ins}
            data = {}
            for v in ins:
                a = self.value.get(v.name)
                if a is not None and a.size <= _DATA_LIMIT:
                    data[v.name] = onnx.numpy_helper.from_array(np.asarray(a), v.name)
            res = onnx.shape_inference.infer_node_outputs(schema, proto, types, data,
                                                          opset_imports=self.opsets)
        except onnx.shape_inference.InferenceError as exc:
            # the node contradicts its inputs' shapes: the model is invalid there
            why = (node.name, node.op_type, str(exc).strip().splitlines()[0])
            self.rejected.update((o.name, why) for o in outs)
            res = {}
        except Exception:
            res = {}
        for o in outs:
            t = res.get(o.name)
            shp = None
            if t is not None and t.HasField("tensor_type") and t.tensor_type.HasField("shape"):
                dims = t.tensor_type.shape.dim
                if all(d.HasField("dim_value") for d in dims):
                    shp = tuple(int(d.dim_value) for d in dims)
                if t.tensor_type.elem_type:
                    self.dtype[o.name] = t.tensor_type.elem_type
            if shp is not None and node.op_type in _POOLS and node.domain in ("", "ai.onnx"):
                shp = _ceil_pool_shape(node, self.shape[ins[0].name], shp)
            if shp is None:
                self._fallback([o])
            else:
                self.shape[o.name] = shp
            if o.name not in self.dtype and o.dtype is not None:
                self.dtype[o.name] = int(o.dtype)

    def _fallback(self, outs):
        """The shape recorded in the model, where it is concrete."""
        for o in outs:
            if o.shape is not None and all(isinstance(d, int) for d in o.shape.dims):
                self.shape[o.name] = tuple(o.shape.dims)
                if o.dtype is not None:
                    self.dtype[o.name] = int(o.dtype)

    def _evaluate(self, node: ir.Node) -> bool:
        """Compute a node whose outputs depend only on shapes and weights."""
        ins = list(node.inputs)
        try:
            if node.op_type == "Shape" and node.domain in ("", "ai.onnx"):
                shp = self.shape.get(ins[0].name)
                if shp is None:
                    return False
                a = node.attributes
                start = a["start"].value if a.get("start") is not None else 0
                end = a["end"].value if a.get("end") is not None else None
                vals = [np.asarray(shp[start:end], np.int64)]
            elif node.op_type in ("GlobalMaxPool", "GlobalAveragePool") and \
                    node.domain in ("", "ai.onnx"):
                # numpy, not onnx's reference, whose global pools of a rank-3 tensor reduce
                # the channels too ((2, 1) for (2, 4, 3); a fuzz mismatch)
                x = self.weight(ins[0].name) if ins and ins[0] is not None else None
                if x is None or x.ndim < 3:
                    return False
                axes = tuple(range(2, x.ndim))
                vals = [x.max(axis=axes, keepdims=True) if node.op_type == "GlobalMaxPool"
                        else x.mean(axis=axes, keepdims=True).astype(x.dtype)]
            elif node.op_type == "Size" and node.domain in ("", "ai.onnx"):
                shp = self.shape.get(ins[0].name)
                if shp is None:
                    return False
                vals = [np.asarray(int(np.prod(shp)), np.int64)]
            else:
                feeds = {}
                for v in ins:
                    if v is None or not v.name:
                        continue
                    a = self.weight(v.name)
                    if a is None:
                        return False
                    feeds[v.name] = a
                vals = self._reference(node, feeds)
        except Exception:
            return False
        for o, val in zip(node.outputs, vals):
            if not o.name:
                continue
            val = np.asarray(val)
            self.value[o.name] = val
            self.shape[o.name] = tuple(val.shape)
            self.dtype[o.name] = int(onnx.helper.np_dtype_to_tensor_dtype(val.dtype))
        return True

    def _reference(self, node: ir.Node, feeds: dict) -> list:
        """Run ``node`` in onnx's reference evaluator.  Building one costs far more than
        running it, and a model repeats the same few shape nodes per block: an evaluator is
        built once per node form (op, attributes, which inputs are given), on names of its
        own, and fed by position."""
        from onnx.reference import ReferenceEvaluator

        proto = ir.serde.serialize_node(node)
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in proto.attribute):  # a subgraph may read outer names: as it is
            return ReferenceEvaluator(proto, opsets=self.opset_map).run(None, feeds)
        ins = [f"i{k}" if n else "" for k, n in enumerate(proto.input)]
        order = [n for n in proto.input if n]
        del proto.input[:]
        proto.input.extend(ins)
        outs = [f"o{k}" for k in range(len(proto.output))]
        del proto.output[:]
        proto.output.extend(outs)
        proto.name = ""
        key = proto.SerializeToString()
        ev = self._evaluators.get(key)
        if ev is None:
            ev = self._evaluators[key] = ReferenceEvaluator(proto, opsets=self.opset_map)
        return ev.run(None, {i: feeds[n] for i, n in zip((i for i in ins if i), order)})


_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT8,
              onnx.TensorProto.INT16, onnx.TensorProto.UINT8, onnx.TensorProto.BOOL}


def _session(model: ir.Model, names: list[str]):
    """An onnxruntime session whose outputs are every value in ``names``.  Weights that are
    references into one model file stay there (onnxruntime reads them from that folder):
    the model is not copied into a second multi-MB protobuf."""
    import onnxruntime as ort

    from ...irutil import ir_tensors as _ir_tensors

    folders = {t.base_dir for t in _ir_tensors(model) if isinstance(t, ir.ExternalTensor)}
    proto = ir.to_proto(model) if len(folders) <= 1 else to_proto_inline(model)
    have = {o.name for o in proto.graph.output}
    for n in names:
        if n not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=n))
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    # no repacked copy of every constant GEMM operand (the session runs once or twice)
    so.add_session_config_entry("session.disable_prepacking", "1")
    if len(folders) == 1:
        so.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                    str(next(iter(folders))))
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _run(sess, feeds: dict) -> dict[str, np.ndarray]:
    outs = sess.run(None, feeds)
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


class _Values(dict):
    """Static values by name, the model's initializers (as they were when the probe was made)
    included; those are read when asked, not held: the emitters take the weights one at a
    time, and a weight costs memory only while its layer is made."""

    def __init__(self, values: dict, initializers):
        super().__init__(values)
        self._inits = {k: v for k, v in initializers.items()
                       if v.const_value is not None and k not in values}

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self._inits

    def __getitem__(self, name):
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return tensor_array(self._inits[name].const_value, name)

    def get(self, name, default=None):
        return self[name] if name in self else default


class Probe:
    """``shape[name]``: concrete shape; ``value[name]``: ndarray for static values;
    ``varies[name]``: bool mask of the static value's elements that change with the input size
    (``shape_varies[name]``: the same for the shape of any value); ``rejected[name]``: the node
    (name, op type, inference's message) that leaves a value without a shape because ONNX shape
    inference finds it inconsistent with its inputs' shapes.

    Everything comes from shape inference and the reference evaluation of shape arithmetic
    (``_Walk``): converting never needs a runtime.  Only where inference leaves a shape unknown
    (an op whose output size depends on data) is onnxruntime asked, if it is installed and can
    run the model; otherwise the node that needs that shape says so when it is emitted."""

    def __init__(self, model: ir.Model, specs, input_shapes: dict | None):
        self.input_shapes = _concrete(specs, input_shapes or {})
        self.specs = specs
        self.static = static_values(model)
        walk = _Walk(model, self.static, self.input_shapes, specs)
        self.shape = walk.shape
        self.value = _Values({k: v for k, v in walk.value.items() if k in self.static},
                             model.graph.initializers)
        missing = [o.name for n in model.graph for o in n.outputs
                   if o.name and o.name not in self.shape]
        if missing:
            self._measure(model, missing)
        self.rejected = {k: v for k, v in walk.rejected.items() if k not in self.shape}
        self.varies: dict[str, np.ndarray] = {}
        self.shape_varies: dict[str, np.ndarray] = {}
        # The same walk with every dynamic non-batch dim changed tells which numbers follow it.
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
        walk2 = _Walk(model, self.static, alt, specs)
        for k, v in walk2.value.items():
            a = self.value.get(k)
            if k in self.static and a is not None and a.shape == v.shape and a.dtype.kind in "iu":
                self.varies[k] = (a != v)
        for k, shp2 in walk2.shape.items():
            if k in self.shape and len(self.shape[k]) == len(shp2):
                self.shape_varies[k] = np.array(self.shape[k]) != np.array(shp2)

    def _measure(self, model: ir.Model, names: list[str]):
        """Shapes inference could not give, measured by onnxruntime when it can run the model
        (an optimisation: without it those nodes are reported when they are emitted)."""
        try:
            from ...verify.inputs import random_inputs

            sess = _session(model, names)
            vals = _run(sess, random_inputs(self.specs, self.input_shapes, 0, None))
        except Exception:
            return
        for k, v in vals.items():
            if k in names:
                self.shape[k] = tuple(v.shape)
                if k in self.static:
                    self.value[k] = v
