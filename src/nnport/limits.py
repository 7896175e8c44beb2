"""Resource limits: refuse a model that declares an absurdly large tensor before anything is
allocated.

A model is untrusted input.  A 30-byte initializer can declare dims ``[1000000, 1000000]``; a
ConstantOfShape / Expand / Tile / Range node with constant operands can ask the constant folder
(or the generated code) for terabytes.  The checks here only read dims and tiny constant
vectors, compute sizes with Python integers (no int64 wrap-around) and raise one
:class:`InputError` that names the tensor or node and gives the number.

Entry points (see each docstring for where it is called from):

- :func:`check_elements` -- one declared shape, for any caller.
- :func:`check_proto` -- a whole ``onnx.ModelProto`` (every graph, subgraphs and functions
  included), before ``onnx_ir`` or the constant folder touch it.
- :func:`check_node` -- one ``onnx_ir`` node whose inputs are constant, just before the constant
  folder evaluates it (catches sizes computed by other constant nodes).

The limit is ``MAX_ELEMENTS`` elements per tensor (2**31 by default, i.e. 8 GiB of float32); the
environment variable ``NNPORT_MAX_ELEMENTS`` raises or lowers it.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Iterator

from .errors import InputError

DEFAULT_MAX_ELEMENTS = 2**31
INT64_MAX = 2**63 - 1
# Constant operands larger than this are not read (shape vectors are tiny; a "shape" with more
# entries than this is itself suspicious but not our business here).
_SMALL = 64
# 4-bit types (int4/uint4/float4e2m1): two elements per byte
_SUB_BYTE = {21, 22, 23}


def max_elements() -> int:
    """The per-tensor element limit (``NNPORT_MAX_ELEMENTS`` overrides the default)."""
    raw = os.environ.get("NNPORT_MAX_ELEMENTS", "").strip().replace("_", "").replace(",", "")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"NNPORT_MAX_ELEMENTS={raw!r} is not an integer") from None
        if value > 0:
            return value
    return DEFAULT_MAX_ELEMENTS


def _fmt(n: int) -> str:
    return f"{n:,}"


def numel(dims: Iterable) -> int:
    """Product of dims as a Python int (exact, never wraps).  Unknown dims (None/str) count 1."""
    total = 1
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            try:
                d = int(d)
            except (TypeError, ValueError):
                continue  # symbolic / unknown
        total *= d
    return total


def check_elements(dims: Iterable, what: str, *, limit: int | None = None) -> int:
    """Return the element count of ``dims``; raise InputError when it is negative, overflows
    int64 or exceeds the limit.  ``what`` names the thing, e.g. ``"tensor 'w'"``."""
    dims = list(dims)
    for d in dims:
        if isinstance(d, int) and not isinstance(d, bool) and d < 0:
            raise InputError(f"{what} declares a negative dimension {d} in shape {_dims(dims)}")
    n = numel(dims)
    limit = max_elements() if limit is None else limit
    if n > INT64_MAX:
        raise InputError(f"{what} declares shape {_dims(dims)}: {_fmt(n)} elements overflows "
                         f"int64 (limit {_fmt(limit)} elements)")
    if n > limit:
        raise InputError(f"{what} declares {_fmt(n)} elements (limit {_fmt(limit)}; set "
                         f"NNPORT_MAX_ELEMENTS to raise it)")
    return n


def _dims(dims: list) -> str:
    text = "[" + ", ".join(str(d) for d in dims[:8]) + (", ..." if len(dims) > 8 else "") + "]"
    return text


def _check_count(n: int, what: str) -> None:
    limit = max_elements()
    if n > INT64_MAX:
        raise InputError(f"{what}: {_fmt(n)} elements overflows int64 (limit {_fmt(limit)})")
    if n > limit:
        raise InputError(f"{what} would make {_fmt(n)} elements (limit {_fmt(limit)}; set "
                         f"NNPORT_MAX_ELEMENTS to raise it)")


# ---------------------------------------------------------------------------------------------
# Sizes of ops with constant operands (shared by the proto and the IR walkers)

def _ints(values) -> list[int] | None:
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        return None


def _range_count(start, limit, delta) -> int:
    try:
        start, limit, delta = float(start), float(limit), float(delta)
    except (TypeError, ValueError):
        return 0
    if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
        return 0  # not a size question (onnxruntime refuses delta 0 itself)
    return max(math.ceil((limit - start) / delta), 0)


def _scaled(dims, scales) -> int | None:
    """Elements of floor(dim * scale) per axis (unknown dims count 1: a lower bound)."""
    if scales is None or (dims is not None and len(dims) != len(scales)):
        return None
    try:
        vals = [float(v) for v in scales]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v >= 0 for v in vals):
        return None  # not a size question: the runtime refuses these
    known = dims if dims is not None else [1] * len(vals)
    total = 1
    for d, sc in zip(known, vals):
        d = d if isinstance(d, int) and not isinstance(d, bool) and d >= 0 else 1
        total *= math.floor(d * sc)
    return total


def op_output_elements(op_type: str, consts: list, input_dims: list,
                       attrs: dict | None = None) -> int | None:
    """Elements of the output of ``op_type`` given its constant operands (``consts[i]`` is a
    flat list of numbers or None), known input dims (``input_dims[i]`` a list or None) and
    attributes (name -> int, float or list; only the size-giving ones are read).
    None when the op is not one that can blow up from constants or the size is unknown."""
    attrs = attrs or {}

    def const(i):
        return consts[i] if i < len(consts) else None

    def dims(i):
        return input_dims[i] if i < len(input_dims) else None

    if op_type in ("Resize", "Upsample"):
        n_in = len(consts)
        if op_type == "Resize" and n_in >= 4 and const(3):  # sizes
            sizes = _ints(const(3))
            return None if sizes is None else numel(sizes)
        scales = attrs.get("scales")  # Upsample-7
        if scales is None:
            k = 1 if op_type == "Upsample" or n_in == 2 else 2  # Resize-10: (X, scales)
            scales = const(k) or None
        return _scaled(dims(0), scales)
    if op_type == "Pad":
        pads = attrs.get("pads") if "pads" in attrs else const(1)
        pads = _ints(pads) if pads is not None else None
        if pads is None or dims(0) is None or len(pads) % 2:
            return None
        d = dims(0)
        axes = _ints(const(3)) if const(3) is not None else list(range(len(d)))
        if axes is None or len(pads) != 2 * len(axes):
            return None
        out = [x if isinstance(x, int) and x >= 0 else 1 for x in d]
        for j, ax in enumerate(axes):
            if -len(out) <= ax < len(out):
                out[ax] = max(out[ax] + pads[j] + pads[j + len(axes)], 0)
        return numel(out)
    if op_type == "OneHot":
        depth = const(1)
        if not depth or len(depth) != 1:
            return None
        try:
            depth_n = int(float(depth[0]))
        except (TypeError, ValueError, OverflowError):
            return None
        return numel(dims(0) or []) * max(depth_n, 0)
    if op_type in ("RandomNormal", "RandomUniform") and "shape" in attrs:
        shape = _ints(attrs["shape"])
        return None if shape is None else numel(shape)

    if op_type == "ConstantOfShape":
        shape = _ints(const(0)) if const(0) is not None else None
        return None if shape is None else numel(shape)
    if op_type == "Expand":
        shape = _ints(const(1)) if const(1) is not None else None
        if shape is None:
            return None
        known = input_dims[0] if input_dims and input_dims[0] is not None else []
        # broadcast: output dims are max(in, shape) aligned from the right (>= prod(shape))
        out = list(shape)
        known = [d if isinstance(d, int) else 1 for d in known]
        if len(known) > len(out):
            out = [1] * (len(known) - len(out)) + out
        for i, d in enumerate(reversed(known)):
            j = len(out) - 1 - i
            if out[j] == 1:
                out[j] = d
        return numel(out)
    if op_type == "Tile":
        reps = _ints(const(1)) if const(1) is not None else None
        if reps is None:
            return None
        base = numel(input_dims[0]) if input_dims and input_dims[0] is not None else 1
        return base * numel(reps)
    if op_type == "Range":
        if any(const(i) is None or len(const(i)) != 1 for i in range(3)):
            return None
        return _range_count(const(0)[0], const(1)[0], const(2)[0])
    return None


# ---------------------------------------------------------------------------------------------
# ModelProto walker

def _iter_graphs(graph) -> Iterator:
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _iter_graphs(g)


def _small_values(tensor) -> list | None:
    """The flat values of a tiny, inline tensor (no external data); None otherwise."""
    import onnx
    from onnx import numpy_helper

    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return None
    n = numel(tensor.dims)
    if n > _SMALL or n < 0:
        return None
    try:
        return numpy_helper.to_array(tensor).reshape(-1).tolist()
    except Exception:
        return None  # malformed data: the loader reports it


_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data")


def _check_tensor_proto(tensor, where: str) -> None:
    """Declared size within the limit, and inline data of exactly the declared size."""
    import onnx

    name = tensor.name if isinstance(tensor.name, str) else repr(tensor.name)
    what = f"{where}tensor {name!r}"
    n = check_elements(list(tensor.dims), what)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return
    if tensor.HasField("raw_data"):
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except Exception:
            return  # unknown / string / sub-byte types: the loader reports those
        if tensor.data_type in _SUB_BYTE:
            return
        if len(tensor.raw_data) != n * itemsize:
            raise InputError(f"{what} declares {_fmt(n)} elements ({_fmt(n * itemsize)} bytes) "
                             f"but holds {_fmt(len(tensor.raw_data))} bytes of data")
        return
    # complex types store two numbers per element, 4-bit ones two elements per number
    fits = (n, 2 * n, (n + 1) // 2) if tensor.data_type in _SUB_BYTE else (n, 2 * n)
    for fld in _TYPED_FIELDS:
        count = len(getattr(tensor, fld))
        if count and count not in fits:
            raise InputError(f"{what} declares {_fmt(n)} elements but holds {_fmt(count)} values")


def _check_str(value, what: str) -> None:
    if not isinstance(value, str):  # proto2 strings that are not valid UTF-8 come back as bytes
        raise InputError(f"{what} {value!r} is not valid UTF-8 text")


def _check_einsum(node) -> None:
    """onnx's C++ shape inference loops forever on some Einsum equations with characters
    outside the grammar (seen with NUL / non-ASCII); refuse them before it runs."""
    import re

    for attr in node.attribute:
        if attr.name == "equation":
            eq = attr.s.decode("utf-8", "replace")
            if not re.fullmatch(r"[A-Za-z.,\->\s]*", eq):
                raise InputError(f"{_label(node)}: equation {eq!r} has characters outside "
                                 "letters, ',', '...' and '->'")


def _label(node) -> str:
    return f"node {node.name or '(unnamed)'!r} ({node.op_type})"


def check_proto(proto, name: str = "model") -> None:
    """Refuse a ModelProto that declares a tensor above the limit.  Cheap: reads dims and
    constant vectors of at most 64 elements.

    Call from ``io.load_proto`` right after the ``opset_import`` check (before
    ``_check_external_data``), and from ``io.load_model`` for ``onnx.ModelProto`` sources before
    ``ir.from_proto``."""
    try:
        _check_proto(proto)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None


def _check_proto(proto) -> None:
    import onnx

    graphs = list(_iter_graphs(proto.graph))
    for fn in proto.functions:
        for node in fn.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.extend(_iter_graphs(attr.g))
    outer_consts: dict[str, list] = {}
    outer_dims: dict[str, list] = {}
    for graph in graphs:
        consts = dict(outer_consts)
        dims: dict[str, list] = dict(outer_dims)
        for t in graph.initializer:
            _check_tensor_proto(t, "")
            dims[t.name] = list(t.dims)
            vals = _small_values(t)
            if vals is not None:
                consts[t.name] = vals
        for sp in graph.sparse_initializer:
            check_elements(list(sp.dims), f"sparse tensor {sp.values.name!r}")
            _check_tensor_proto(sp.values, "sparse values ")
            _check_tensor_proto(sp.indices, "sparse indices ")
        for vi in list(graph.input) + list(graph.value_info):
            tt = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tt.HasField("shape"):
                dims.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else None
                                          for d in tt.shape.dim])
        _check_str(graph.name, "graph name")
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            _check_str(vi.name, "value name")
        for node in graph.node:
            for field in ("op_type", "domain", "name"):
                _check_str(getattr(node, field), f"node {field}")
            for io_name in list(node.input) + list(node.output):
                _check_str(io_name, f"node {node.name!r} input/output name")
            for attr in node.attribute:
                _check_str(attr.name, f"node {node.name!r} attribute name")
                if attr.type == onnx.AttributeProto.TENSOR:
                    _check_tensor_proto(attr.t, f"{_label(node)} attribute {attr.name!r} ")
                elif attr.type == onnx.AttributeProto.TENSORS:
                    for t in attr.tensors:
                        _check_tensor_proto(t, f"{_label(node)} attribute {attr.name!r} ")
                elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                    check_elements(list(attr.sparse_tensor.dims),
                                   f"{_label(node)} attribute {attr.name!r}")
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                for attr in node.attribute:
                    if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                        vals = _small_values(attr.t)
                        if vals is not None:
                            consts[node.output[0]] = vals
                        dims[node.output[0]] = list(attr.t.dims)
                    elif attr.name == "value_ints":
                        consts[node.output[0]] = list(attr.ints)
                        dims[node.output[0]] = [len(attr.ints)]
                    elif attr.name in ("value_int", "value_float"):
                        consts[node.output[0]] = [attr.i if attr.name == "value_int" else attr.f]
                        dims[node.output[0]] = []
                continue
            if node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "Einsum":
                _check_einsum(node)
            if node.op_type == "Loop":
                _check_loop(node, consts)
            n = op_output_elements(node.op_type, [consts.get(i) for i in node.input],
                                   [dims.get(i) for i in node.input], _proto_attrs(node))
            if n is not None:
                _check_count(n, _label(node))
        # names of this graph are visible in its subgraphs (which come later in ``graphs``)
        outer_consts, outer_dims = consts, dims


DEFAULT_MAX_LOOP_ITERATIONS = 2**24


def _check_loop(node, consts: dict) -> None:
    """A Loop with a constant trip count and no condition runs exactly that many times: refuse
    counts no runtime finishes (a while-loop, with a condition input, may stop early)."""
    ins = list(node.input)
    if len(ins) < 2 or not ins[0] or ins[1]:
        return
    trip = consts.get(ins[0])
    if not trip or len(trip) != 1:
        return
    limit = int(os.environ.get("NNPORT_MAX_LOOP_ITERATIONS", DEFAULT_MAX_LOOP_ITERATIONS))
    if int(trip[0]) > limit:
        raise InputError(f"{_label(node)} runs {_fmt(int(trip[0]))} iterations with no exit "
                         f"condition (limit {_fmt(limit)}; set NNPORT_MAX_LOOP_ITERATIONS to "
                         "raise it)")


# ---------------------------------------------------------------------------------------------
# onnx_ir node check (constant folder)

_SIZE_ATTRS = ("scales", "pads", "shape")  # attributes that give an output size


def _proto_attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        if a.name in _SIZE_ATTRS and (a.ints or a.floats):
            out[a.name] = list(a.ints) if a.ints else list(a.floats)
    return out


def check_node(node) -> None:
    """Refuse folding ``node`` (an ``onnx_ir.Node``) when its constant operands ask for a tensor
    above the limit.  Call at the top of ``passes.normalize.fold_constants._should_fold`` and
    before each
    evaluation in ``fold_simple``: the folder is where a computed shape becomes an allocation."""
    n = node_output_elements(node)
    if n is not None:
        _check_count(n, _label(node))


def node_output_elements(node) -> int | None:
    """The elements ``node`` (an ``onnx_ir.Node``) would make from its constant operands and
    known input shapes, where that is computable (None otherwise)."""
    import onnx_ir as ir

    if node.domain not in ("", "ai.onnx"):
        return None
    consts: list = []
    dims: list = []
    for v in node.inputs:
        tensor = getattr(v, "const_value", None) if v is not None else None
        if tensor is not None:
            shape: list[int | None] | None = (
                [int(d) for d in tensor.shape] if tensor.shape is not None else None)
            dims.append(shape)
            if shape is not None and numel(shape) <= _SMALL:
                try:
                    consts.append(tensor.numpy().reshape(-1).tolist())
                except Exception:
                    consts.append(None)
            else:
                consts.append(None)
        else:
            consts.append(None)
            shape = None
            if v is not None and v.shape is not None:
                shape = [d if isinstance(d, int) else None for d in v.shape]
            dims.append(shape)
    attrs = {}
    for name in _SIZE_ATTRS:
        a = node.attributes.get(name)
        if a is not None and a.type in (ir.AttributeType.INTS, ir.AttributeType.FLOATS):
            attrs[name] = list(a.value)
    return op_output_elements(node.op_type, consts, dims, attrs)
