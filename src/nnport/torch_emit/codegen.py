"""ONNX graph (onnx_ir) -> readable, standalone PyTorch source.

The generated file follows the contract in DESIGN.md: ``class Model(nn.Module)``, ``load()``,
forward takes the graph inputs in order and returns one tensor or a tuple in output order, and it
imports only torch, safetensors and the standard library.

Emitters (``torch_emit/ops/op_*.py``) receive a :class:`Ctx` and the node's inputs as
:class:`Arg` strings (the Python expression holding the value, with ``.value`` pointing to the
onnx_ir Value) and the attributes as keyword arguments.  They return an expression (or one per
output), or ``None`` when they assigned ``ctx.out_names`` themselves.
"""
from __future__ import annotations

import builtins
import contextlib
import keyword
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import onnx_ir as ir

from .._version import __version__
from ..dtypes import COMPUTE_AS, compute_dtype, torch_dtype_name, torch_dtype_src
from ..errors import ConversionError, NnportError, UnsupportedOpsError
from ..irutil import iter_nodes  # also re-exported for emitters
from ..registry import Registry, norm_domain, py_attr_name
from . import helpers as _helpers

REGISTRY = Registry("torch")
register = REGISTRY.register

# Names the generated module itself uses; values from the model never take them.
_RESERVED = {"torch", "nn", "F", "os", "math", "self", "load_file", "Model", "load", "Optional",
             "List", "Tuple"} | set(dir(builtins))
# Float initializers become trainable nn.Parameters; everything else is a buffer.
_PARAM_TYPES = {ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16}
# tensors up to this many elements are read to tell a mask from a weight (see learnable())
_MASK_CHECK_ELEMS = 1 << 22


def learnable(tensor: Any) -> bool:
    """Whether a constant the code uses as a plain tensor is a trainable weight: floating,
    more than one element (a scalar is a constant, e.g. paddle2onnx's helper constants), and not
    a mask (non-finite values, or only 0 and one large negative value like -10000 / finfo.min).
    Integer and boolean tensors (indices, shapes, masks) are never parameters."""
    dt = ir.DataType.from_numpy(tensor.dtype) if isinstance(tensor, np.ndarray) else tensor.dtype
    if dt not in _PARAM_TYPES:
        return False
    shape = tensor.shape if isinstance(tensor, np.ndarray) else tuple(tensor.shape.numpy())
    size = int(np.prod(shape)) if len(shape) else 1
    if size <= 1:
        return False
    if size > _MASK_CHECK_ELEMS:
        return True
    try:
        arr = np.asarray(tensor if isinstance(tensor, np.ndarray) else tensor.numpy(),
                         dtype=np.float64)
    except Exception:  # unreadable data is reported where the code reads it
        return True
    if not np.isfinite(arr).all():
        return False
    low = arr.min()
    return not (low <= -1e4 and np.all((arr == 0) | (arr == low)))
_IDENT_RE = re.compile(r"[^0-9a-zA-Z_]")


def sanitize(name: str, default: str = "v") -> str:
    """Turn any string into a Python identifier (no uniqueness)."""
    name = _IDENT_RE.sub("_", name or "")
    name = re.sub(r"_+", "_", name).strip("_")
    if not name:
        name = default
    if name[0].isdigit():
        name = f"{default}_{name}"
    if keyword.iskeyword(name) or name in _RESERVED or name.startswith("__"):
        name = f"{name}_"
    return name


class Namer:
    """Unique, legal identifiers in one namespace."""

    def __init__(self, taken: Iterable[str] = ()):
        self.taken = set(taken)

    def new(self, hint: str, default: str = "v", max_len: int = 48) -> str:
        base = sanitize(hint, default)
        if len(base) > max_len:
            base = base[-max_len:].lstrip("_0123456789") or default
        name, i = base, 1
        while name in self.taken or keyword.iskeyword(name):
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name


class Arg(str):
    """An input of a node: the expression that holds it, plus its onnx_ir Value."""

    value: ir.Value | None

    def __new__(cls, expr: str, value: ir.Value | None):
        obj = super().__new__(cls, expr)
        obj.value = value
        return obj


def py_literal(v: Any, dtype: ir.DataType | None = None) -> str:
    """A Python literal for a scalar/list, exact for the given element type."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        inner = ", ".join(py_literal(x, dtype) for x in v)
        return f"[{inner}]"
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "float('nan')"
        if math.isinf(f):
            return "float('inf')" if f > 0 else "-float('inf')"
        if dtype == ir.DataType.FLOAT or isinstance(v, np.float32):
            s = np.format_float_positional(np.float32(f), unique=True, trim="0")
            s2 = np.format_float_scientific(np.float32(f), unique=True, trim="0")
            s = s2 if len(s2) < len(s) else s
            return s if float(s) == f or np.float32(float(s)) == np.float32(f) else repr(f)
        return repr(f)
    if isinstance(v, bytes):
        return repr(v.decode("utf-8", "replace"))
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return "None"
    raise TypeError(f"no literal for {type(v).__name__}")


@dataclass
class _Weight:
    attr: str  # attribute name on the module (buffer/parameter)
    value: Any  # ir tensor or numpy array
    dtype: ir.DataType
    shape: tuple[int, ...]
    parameter: bool


class Transposed:
    """A 2-D constant used transposed (an ``nn.Linear`` weight made from a MatMul's (K, N)
    matrix).  Nothing is read at conversion time: the file writer streams the transpose
    tensor by tensor and the in-memory module takes a transposed view of the mapped weight."""

    def __init__(self, base: Any):
        self.base = base  # ir tensor (possibly external) or numpy array

    @property
    def dtype(self) -> ir.DataType:
        b = self.base
        return ir.DataType.from_numpy(b.dtype) if isinstance(b, np.ndarray) else b.dtype

    @property
    def shape(self) -> tuple[int, int]:
        b = self.base
        k, n = (b.shape if isinstance(b, np.ndarray) else b.shape.numpy())
        return int(n), int(k)

    @property
    def nbytes(self) -> int:
        return int(self.base.nbytes)

    def numpy(self) -> np.ndarray:
        b = self.base
        return np.ascontiguousarray((b if isinstance(b, np.ndarray) else b.numpy()).T)


@dataclass
class _Module:
    attr: str
    ctor: str
    tensors: dict[str, Any]


@dataclass(eq=False)
class _Body:
    """One class's code, before identical ones are merged (see CodeGen._assemble)."""

    idx: int
    scope: Any  # tree.Scope, or None for a flat Model
    in_names: list[str]
    init_lines: list[str]
    forward_src: str
    line_nodes: list[str | None]  # node of each forward line
    state: dict[str, Any]
    cls: str = ""

    @property
    def ctor(self) -> str:
        return f"__cls{self.idx}__"


@dataclass
class Line:
    indent: int
    text: str
    node: str | None = None


class Ctx:
    """What an emitter sees of the code generator while converting one node."""

    def __init__(self, gen: "CodeGen", node: ir.Node, opset: int, out_names: list[str]):
        self.gen = gen
        self.node = node
        self.opset = opset
        self.out_names = out_names

    # ----- facts about inputs ------------------------------------------------------------
    def const(self, arg: Arg | None) -> np.ndarray | None:
        """The value of a constant input (initializer or folded), else None."""
        if arg is None or arg.value is None:
            return None
        return self.gen.const_array(arg.value)

    def is_const(self, arg: Arg | None) -> bool:
        return arg is not None and arg.value is not None and arg.value.const_value is not None

    def shape(self, arg: Arg | None) -> tuple | None:
        """Static shape: a tuple whose entries are ints, or None for dims not known."""
        if arg is None or arg.value is None:
            return None
        v = arg.value
        if v.const_value is not None:
            return tuple(v.const_value.shape.numpy())
        if v.shape is None:
            return None
        return tuple(d if isinstance(d, int) else None for d in v.shape.dims)

    def rank(self, arg: Arg | None) -> int | None:
        s = self.shape(arg)
        return None if s is None else len(s)

    def dtype(self, arg: Arg | None) -> ir.DataType | None:
        if arg is None or arg.value is None:
            return None
        v = arg.value
        if v.const_value is not None:
            return v.const_value.dtype
        return v.dtype

    def out_dtype(self, i: int = 0) -> ir.DataType | None:
        outs = self.node.outputs
        return outs[i].dtype if i < len(outs) else None

    def out_shape(self, i: int = 0) -> tuple | None:
        outs = self.node.outputs
        if i >= len(outs) or outs[i].shape is None:
            return None
        return tuple(d if isinstance(d, int) else None for d in outs[i].shape.dims)

    # ----- code building -----------------------------------------------------------------
    def tmp(self, hint: str = "t") -> str:
        return self.gen.locals.new(hint)

    def line(self, text: str) -> None:
        self.gen.emit(text, self.node)

    @contextlib.contextmanager
    def indent(self):
        self.gen.indent += 1
        try:
            yield
        finally:
            self.gen.indent -= 1

    def weight(self, array: Any, hint: str, parameter: bool | None = None) -> str:
        """Register a tensor as a buffer/parameter of the Model; returns ``self.<name>``."""
        return self.gen.add_weight(array, hint, parameter, node=self.node)

    def module(self, hint: str, ctor: str, tensors: dict[str, Any]) -> str:
        """Register a submodule (e.g. ``nn.Conv2d(...)``) with its state; returns ``self.x``."""
        return self.gen.add_module(hint, ctor, tensors, node=self.node)

    def module_hint(self, weight: Arg | None = None) -> str:
        """A readable name for a submodule: the weight's name without ``.weight`` (exporters
        name weights after the module that owns them), else the node's name, else the op."""
        if weight is not None and weight.value is not None and weight.value.name:
            name = weight.value.name
            for suffix in (".weight", "_weight", ".W", "_W", "_w_0", "_w", ".scale", "_scale",
                           ".gamma", "_gamma", "_s_0"):
                if name.endswith(suffix) and len(name) > len(suffix):
                    return name[: -len(suffix)]
        if self.node.name:
            return self.node.name.strip("/").replace("/", "_")
        if weight is not None and weight.value is not None and weight.value.name:
            return weight.value.name
        return self.node.op_type.lower()

    def helper(self, name: str) -> str:
        """Copy a helper function from ``torch_emit/helpers`` into the generated file."""
        return self.gen.add_helper(name)

    def lit(self, v: Any, dtype: ir.DataType | None = None) -> str:
        return py_literal(v, dtype)

    def dtype_src(self, dt: ir.DataType | int) -> str:
        try:
            return torch_dtype_src(dt)
        except KeyError:
            self.fail(f"element type {ir.DataType(dt).name} is not supported by torch")

    def subgraph(self, graph: ir.Graph, inputs: Sequence[str]) -> list[str]:
        """Emit a subgraph's nodes at the current indent; its inputs are bound to ``inputs``
        (expressions).  Returns the expressions of its outputs."""
        return self.gen.emit_subgraph(graph, inputs)

    def name_of(self, value: ir.Value) -> str:
        return self.gen.expr_of(value, self.node)

    def fail(self, msg: str):
        raise ConversionError(f"{node_label(self.node)}: {msg}")


def node_label(node: ir.Node) -> str:
    dom = norm_domain(node.domain)
    op = f"{dom}::{node.op_type}" if dom else node.op_type
    return f"node {node.name!r} ({op})" if node.name else f"{op} node"


def _attr_value(attr: ir.Attr) -> Any:
    t = attr.type
    A = ir.AttributeType
    if t == A.STRING:
        v = attr.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    if t == A.STRINGS:
        return [s.decode("utf-8", "replace") if isinstance(s, bytes) else s for s in attr.value]
    if t == A.TENSOR:
        return attr.value.numpy()
    if t == A.TENSORS:
        return [x.numpy() for x in attr.value]
    if t in (A.INTS, A.FLOATS, A.GRAPHS):
        return list(attr.value)
    return attr.value


def model_opsets(model: ir.Model) -> dict[str, int]:
    out = {}
    for dom, ver in model.opset_imports.items():
        out[norm_domain(dom)] = ver
    out.setdefault("", 1)
    return out


def preflight(model: ir.Model, registry: Registry = REGISTRY) -> list[dict]:
    """Every node the target cannot convert, all at once."""
    opsets = model_opsets(model)
    missing = []
    for node, _ in iter_nodes(model.graph):
        dom = norm_domain(node.domain)
        opset = opsets.get(dom, 1)
        if registry.lookup(dom, node.op_type, opset) is None:
            missing.append({"domain": dom, "op_type": node.op_type, "opset": opset,
                            "node": node.name or f"<unnamed {node.op_type}>"})
    return missing


class CodeGen:
    def __init__(self, model: ir.Model, *, source_name: str = "model.onnx",
                 registry: Registry = REGISTRY, record: bool = False, flat: bool = False):
        self.model = model
        # flat=False: one nn.Module class per module scope the exporter recorded (tree.py)
        self.flat = flat
        self.scope_path: tuple[str, ...] = ()  # module path of the class being written
        self.lists: dict[str, dict[int, tuple[str, dict]]] = {}  # ModuleList attr -> slots
        self.holders: list[str] = []  # dotted paths of plain nn.Module() holders
        self.tree_notes: list[str] = []
        self.untrusted: list[str] = []  # generated state keys of tensors the exporter changed
        self._tree = False
        self._bodies: list[_Body] = []
        self.classes: list[str] = []  # the classes written besides Model
        self.line_of: dict[str, int] = {}  # node name -> line (1-based) of the written file
        # record=True: after every node, forward() calls self.record(node_name, onnx_output_name,
        # value), which passes them to ``self.recorder`` when set (used by verify --locate).
        self.record = record
        self.registry = registry
        self.opsets = model_opsets(model)
        self.source_name = source_name
        self.attrs = Namer()  # module attribute names
        self.locals = Namer()  # forward() local names
        self.weights: dict[str, _Weight] = {}
        self.const_attr: dict[int, str] = {}  # id(Value) -> placeholder attribute name
        self.pending: dict[str, ir.Value] = {}  # placeholder -> constant value
        # values tracked as Python int expressions (see symbolic.py):
        # id(Value) -> (list of exprs or one expr, dtype, device expr or None)
        self.syms: dict[int, tuple] = {}
        self.sym_ph: dict[str, tuple] = {}  # placeholder -> the same tuple
        self.bools: dict[int, list[bool]] = {}
        self.modules: dict[str, _Module] = {}
        self.helpers: dict[str, str] = {}
        self.exprs: dict[int, str] = {}  # id(Value) -> expression
        self.lines: list[Line] = []
        self.indent = 2
        self._const_cache: dict[int, np.ndarray] = {}
        self._inits: dict[str, ir.Value] | None = None

    # ----- values ------------------------------------------------------------------------
    def const_array(self, value: ir.Value) -> np.ndarray | None:
        if value.const_value is None:
            return None
        key = id(value)
        if key not in self._const_cache:
            try:
                self._const_cache[key] = value.const_value.numpy()
            except Exception as exc:
                raise ConversionError(f"tensor {value.name!r}: cannot read its data ({exc})") from None
        return self._const_cache[key]

    def expr_of(self, value: ir.Value, node: ir.Node | None) -> str:
        key = id(value)
        if key in self.exprs:
            return self.exprs[key]
        if value.const_value is not None:
            attr = self.const_attr.get(key)
            if attr is None:
                tensor = value.const_value
                dt = tensor.dtype
                if dt == ir.DataType.STRING:
                    # strings live in code, not in safetensors
                    expr = py_literal(self.const_array(value).tolist())
                    self.exprs[key] = expr
                    return expr
                # A placeholder: only constants the code ends up using get a name (and a
                # good one), in generate().
                attr = f"__c{len(self.const_attr)}__"
                self.const_attr[key] = attr
                self.pending[attr] = value
            return f"self.{attr}"
        where = f" used by {node_label(node)}" if node is not None else ""
        raise ConversionError(f"tensor {value.name!r}{where} is not produced by any node "
                              "and is not a graph input or initializer")

    def set_sym(self, value: ir.Value, sym, dtype: ir.DataType, device: str | None) -> None:
        """Track ``value`` as Python expressions; it becomes a tensor only where code needs one."""
        rec = (sym, dtype, device)
        self.syms[id(value)] = rec
        ph = f"__s{len(self.sym_ph)}__"
        self.sym_ph[ph] = rec
        self.bind(value, ph)

    def _materialize(self, rec) -> str:
        sym, dtype, device = rec
        if dtype == ir.DataType.BOOL:
            body = py_literal([bool(int(e)) for e in sym]) if isinstance(sym, list) else (
                py_literal(bool(int(sym))))
        else:
            body = f"[{', '.join(sym)}]" if isinstance(sym, list) else str(sym)
        dev = f", device={device}" if device else ""
        return f"torch.tensor({body}, dtype={torch_dtype_src(dtype)}{dev})"

    def add_weight(self, array: Any, hint: str, parameter: bool | None = None,
                   node: ir.Node | None = None) -> str:
        if isinstance(array, np.ndarray):
            dt = ir.DataType.from_numpy(array.dtype)
            shape = tuple(array.shape)
        else:
            dt = array.dtype
            shape = tuple(array.shape.numpy())
        attr = self._place(hint, {"": array}, node, "w", single=True)
        self.weights[attr] = _Weight(attr, array, dt, shape,
                                     dt in _PARAM_TYPES if parameter is None else parameter)
        return f"self.{attr}"

    def add_module(self, hint: str, ctor: str, tensors: dict[str, Any],
                   node: ir.Node | None = None) -> str:
        tensors = {k: v for k, v in tensors.items() if v is not None}
        slot = self._place(hint, tensors, node, "m")
        if isinstance(slot, tuple):
            name, idx = slot
            self.lists[name][idx] = (ctor, tensors)
            return f"self.{name}[{idx}]"
        self.modules[slot] = _Module(slot, ctor, tensors)
        return f"self.{slot}"

    # ----- where a module or tensor goes in the tree -----------------------------------------
    def _is_tensor(self, v: Any, name: str) -> bool:
        """Whether an emitter's tensor is the ONNX file's tensor ``name`` (same shape and data;
        a ``Transposed`` one: its base).  Emitters pass what they read, views and copies."""
        if self._inits is None:
            self._inits = dict(self.model.graph.initializers)
        value = self._inits.get(name)
        if value is None or value.const_value is None:
            return False
        if isinstance(v, Transposed):
            v = v.base
        if v is value.const_value or v is value:
            return True
        if isinstance(v, ir.Value):
            return False
        if not isinstance(v, np.ndarray):
            return getattr(v, "name", None) == name
        ref = self.const_array(value)
        return ref is not None and ref.shape == v.shape and ref.dtype == v.dtype and (
            ref is v or np.array_equal(ref, v))

    def _slot(self, rel: tuple[str, ...], single: bool):
        """``rel`` as an attribute, a ModuleList slot (``name.3``) or a holder path
        (``embedding.weight``: ``self.embedding = nn.Module()`` holds it), or None."""
        if len(rel) == 1 and _is_ident(rel[0]) and rel[0] not in self.attrs.taken:
            self.attrs.taken.add(rel[0])
            return rel[0]
        if not single and len(rel) == 2 and _is_ident(rel[0]) and rel[1].isdigit():
            slots = self.lists.get(rel[0])
            if slots is None and rel[0] not in self.attrs.taken:
                self.attrs.taken.add(rel[0])
                slots = self.lists[rel[0]] = {}
            if slots is not None and int(rel[1]) not in slots:
                return rel[0], int(rel[1])
            return None
        if len(rel) >= 2 and all(_is_ident(a) for a in rel):
            # plain nn.Module holders for the path's parents
            for i in range(1, len(rel)):
                head = ".".join(rel[:i])
                if head in self.holders:
                    continue
                if head in self.attrs.taken or head in self.lists:
                    return None
                self.attrs.taken.add(head)
                self.holders.append(head)
            name = ".".join(rel)
            if name in self.attrs.taken or name in self.holders:
                return None
            self.attrs.taken.add(name)
            return name
        return None

    def _linear_t(self, v: Any, tensors: dict, full, node: ir.Node | None) -> bool:
        """An nn.Linear weight that the exporter stored transposed for a MatMul under a name
        of its own (dynamo ``val_13``, TorchScript ``onnx::MatMul_123``): it is the original
        weight when the bias beside it is the original's."""
        if not isinstance(v, Transposed):
            return False
        name = getattr(v.base, "name", None) or ""
        if not _EXPORTER_T.fullmatch(name):
            return False
        if "bias" in tensors:
            return self._is_tensor(tensors["bias"], full("bias"))
        return self._bias_free_linear(name, full(""), node)

    def _bias_free_linear(self, name: str, hint: str, node: ir.Node | None) -> bool:
        """A bias-free nn.Linear (every q/k/v projection): the exporter's transposed weight
        ``name`` is used by this one MatMul, recorded inside a module of class Linear (dynamo
        records classes) or inside module ``hint`` (TorchScript names nodes by scope), and the
        file has no other tensor of that module that would say it was something else."""
        from .tree import node_scope

        if node is None or node.op_type not in ("MatMul", "Linear") or not hint:
            return False
        if self._inits is None:
            self._inits = dict(self.model.graph.initializers)
        value = self._inits.get(name)
        if value is None or len(value.uses()) != 1:
            return False
        rec = node_scope(node)
        if rec is None or not rec[0]:
            return False
        atoms, classes = rec
        if classes:  # dynamo records each module's class
            if not (classes.get(atoms) or "").rsplit(".", 1)[-1].endswith("Linear"):
                return False
        elif atoms != tuple(hint.split(".")):  # TorchScript: the node's scope is the name
            return False
        prefix = ".".join(atoms) + "."
        return not any(k.startswith(prefix) for k in self._inits)

    def _relative(self, dotted: str | None) -> tuple[str, ...] | None:
        """``dotted`` (a parameter path) relative to the class being written, or None."""
        if not dotted:
            return None
        atoms = tuple(dotted.split("."))
        n = len(self.scope_path)
        if atoms[:n] != self.scope_path or len(atoms) <= n:
            return None
        return atoms[n:]

    def _place(self, hint: str, tensors: dict[str, Any], node: ir.Node | None, default: str,
               single: bool = False):
        """The attribute (or ``(list, index)`` ModuleList slot) for a module or tensor named
        ``hint``.  In tree mode, a name that is the exporter's parameter path of every tensor
        (``layer1.0.conv1`` with ``layer1.0.conv1.weight``) becomes the path relative to the
        class being written, so state-dict keys equal the original model's.  A tensor the
        exporter changed (BatchNorm fused into a Conv, constant folding) never takes an
        original key: its module is named ``<name>_folded``."""
        if not self._tree:
            return self.attrs.new(hint, default)
        rel = self._relative(hint)
        leaf = _leaf_path(node, self.scope_path)
        full = lambda k: ".".join((hint,) + ((k,) if k else ()))
        # the tensors are the file's tensors named after ``hint`` (the original parameters)
        orig = bool(hint) and not _rewritten(node) and all(
            self._is_tensor(v, full(k)) or (k == "weight" and self._linear_t(v, tensors, full, node))
            for k, v in tensors.items())
        trusted = orig and rel is not None
        if orig and leaf and leaf != rel and not single:
            # the original tensors of another module with equal values (the exporter shares
            # equal initializers; tied weights): the module this node was recorded in has
            # the same values under its own name
            rel, trusted = leaf, True
        elif not trusted and leaf and (rel is None or len(rel) != 1):
            rel = leaf  # else the name the tensors carry (dynamo: conv1 for a BN-fused conv)
        if rel is not None and trusted:
            target = self._slot(rel, single)
            if target is not None:
                return target
        if rel is not None:
            name = "_".join(rel)
            if trusted:
                return self.attrs.new(name, default)
            attr = self.attrs.new(name + "_folded", default)
            self.untrusted.append(".".join(self.scope_path + (attr,)))
            return attr
        return self.attrs.new(hint, default)

    def add_helper(self, name: str) -> str:
        if name not in self.helpers:
            self.helpers[name], needs = _helpers.source(name)
            for dep in needs:
                self.add_helper(dep)
        return name

    def emit(self, text: str, node: ir.Node | None = None) -> None:
        label = node.name if node is not None else None
        for part in text.split("\n"):
            self.lines.append(Line(self.indent, part, label))

    # ----- graph walking -----------------------------------------------------------------
    def bind(self, value: ir.Value, expr: str) -> None:
        self.exprs[id(value)] = expr

    def emit_nodes(self, graph: ir.Graph) -> None:
        for node in graph:
            self.emit_node(node)

    def emit_subgraph(self, graph: ir.Graph, inputs: Sequence[str]) -> list[str]:
        for value, expr in zip(graph.inputs, inputs):
            if expr is not None:
                self.bind(value, expr)
        self.emit_nodes(graph)
        return [self.expr_of(v, None) for v in graph.outputs]

    def emit_node(self, node: ir.Node) -> None:
        dom = norm_domain(node.domain)
        opset = self.opsets.get(dom, 1)
        em = self.registry.lookup(dom, node.op_type, opset)
        if em is None:
            raise UnsupportedOpsError("torch", [{"domain": dom, "op_type": node.op_type,
                                                 "opset": opset, "node": node.name}])
        args: list[Arg | None] = []
        for v in node.inputs:
            if v is None or (v.name == "" and v.producer() is None and v.const_value is None):
                args.append(None)
            else:
                args.append(Arg(self.expr_of(v, node), v))
        # trailing missing optional inputs are simply not passed
        while args and args[-1] is None:
            args.pop()
        kwargs = {}
        for name, attr in node.attributes.items():
            if attr.is_ref():
                raise ConversionError(f"{node_label(node)}: attribute {name!r} refers to a "
                                      "function attribute outside a function")
            pname = py_attr_name(name)
            if pname not in em.attr_names and not em.any_attrs:
                raise ConversionError(
                    f"{node_label(node)}: attribute {name!r} is not supported by the "
                    f"{node.op_type} converter (opset {opset})")
            kwargs[pname] = _attr_value(attr)
        if not em.variadic and len(args) > em.n_positional:
            raise ConversionError(f"{node_label(node)}: {len(args)} inputs given, the "
                                  f"{node.op_type} converter takes at most {em.n_positional}")
        out_names = []
        for i, out in enumerate(node.outputs):
            hint = out.name or f"{node.op_type.lower()}_{i}"
            if self._tree:
                out_names.append(self.locals.new(self._value_hint(out), "v"))
            else:
                out_names.append(self.locals.new(_short_hint(hint, node), "v"))
        ctx = Ctx(self, node, opset, out_names)
        from .symbolic import try_symbolic

        if try_symbolic(ctx, args, kwargs):
            self._record(node, [self.exprs[id(o)] for o in node.outputs])
            return
        try:
            result = em.fn(ctx, *args, **kwargs)
        except NnportError:
            raise
        except Exception as exc:
            raise ConversionError(f"{node_label(node)}: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())}") from exc
        if result is None:
            pass
        elif isinstance(result, str):
            n_used = len(node.outputs)
            if n_used == 1:
                self.emit(f"{out_names[0]} = {result}", node)
            else:
                targets = ", ".join(
                    out_names[i] if out.uses() or out.is_graph_output() else "_"
                    for i, out in enumerate(node.outputs))
                self.emit(f"{targets} = {result}", node)
        else:
            for i, expr in enumerate(list(result)[: len(node.outputs)]):
                if expr is None:
                    out_names[i] = "None"
                else:
                    self.emit(f"{out_names[i]} = {expr}", node)
        for out, name in zip(node.outputs, out_names):
            self.bind(out, name)
        self._record(node, out_names)

    def _record(self, node: ir.Node, names: list[str]) -> None:
        if self.record:
            for out, name in zip(node.outputs, names):
                if out.name and name != "None":
                    fn = "_record" if self._tree else "self.record"
                    self.emit(f"{fn}({node.name!r}, {out.name!r}, {name})", node)

    # ----- the file ----------------------------------------------------------------------
    def generate(self) -> tuple[str, dict[str, Any]]:
        """Return (source, state) where state maps state_dict keys to ir/numpy tensors."""
        graph = self.model.graph
        root = None
        if not self.flat:
            from .tree import build

            root, why = build(graph)
            if root is None:
                self.tree_notes.append(f"Flat code: {why}.")
        self._tree = root is not None
        in_names = []
        for v in graph.inputs:
            name = self.locals.new(v.name or "input", "x")
            in_names.append(name)
            self.bind(v, name)
            if v.dtype in COMPUTE_AS:
                self.emit(f"{name} = {name}.to({torch_dtype_src(v.dtype)})")
        self._n_nodes = sum(1 for _ in graph)
        self._done = 0
        self._bodies: list[_Body] = []
        if root is None:
            for node in graph:
                self._emit_one(node)
        else:
            self._emit_items(root)
        outs = [self.expr_of(v, None) for v in graph.outputs]
        outs = [f"{e}.to(torch.{torch_dtype_name(v.dtype)})" if v.dtype in COMPUTE_AS else e
                for e, v in zip(outs, graph.outputs)]
        if len(outs) == 1:
            self.emit(f"return {outs[0]}")
        else:
            self.emit(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        body = self._finish_body(in_names, root)
        return self._assemble(body)

    def _emit_one(self, node: ir.Node) -> None:
        from .. import progress

        self.emit_node(node)
        self._done += 1
        progress.update("generating PyTorch code", self._done, self._n_nodes)

    # ----- module tree -------------------------------------------------------------------
    _SCOPED = ("attrs", "locals", "weights", "modules", "lines", "const_attr", "pending",
               "exprs", "indent", "lists", "scope_path", "holders")

    def _enter(self, path: tuple[str, ...]) -> dict:
        saved = {k: getattr(self, k) for k in self._SCOPED}
        saved["_untrusted"] = len(self.untrusted)
        saved["_bodies"] = len(self._bodies)
        self.attrs, self.locals = Namer(), Namer()
        self.weights, self.modules, self.lists, self.holders = {}, {}, {}, []
        self.lines, self.const_attr, self.pending, self.exprs = [], {}, {}, {}
        self.indent, self.scope_path = 2, path
        return saved

    def _leave(self, saved: dict, discard: bool = False) -> None:
        if discard:
            del self.untrusted[saved["_untrusted"]:]
            del self._bodies[saved["_bodies"]:]
        for k in self._SCOPED:
            setattr(self, k, saved[k])

    def _emit_items(self, scope) -> None:
        for item in scope.items:
            if isinstance(item, ir.Node):
                self._emit_one(item)
            else:
                self._emit_child(item)

    def _is_sym(self, value: ir.Value) -> bool:
        return bool(self.syms.get(id(value))) or id(value) in self.bools

    def _emit_child(self, child) -> None:
        """A child scope: a call of its own class where its boundary is clean, else its nodes
        written here (merged upward)."""
        from .tree import boundary, is_container

        if is_container(child):
            if child.children and not any(isinstance(i, ir.Node) for i in child.items):
                if not self._emit_sequential(child):
                    for c in child.children:
                        self._emit_child(c)
            else:
                self._emit_items(child)
            return
        ins, outs = boundary(child, self.model.graph)
        body = None
        if outs and not any(self._is_sym(v) for v in ins):
            body = self._emit_class(child, ins, outs)
        if body is None:
            self._emit_items(child)
            return
        target = self._child_slot(child.path[len(self.scope_path):], body.ctor, body.state)
        self._emit_call(target, ins, outs, child)

    def _emit_class(self, scope, ins, outs):
        saved = self._enter(scope.path)
        params = []
        for i, v in enumerate(ins):
            # the graph's own inputs keep their names; others are x, x1, ... (not named after
            # their producer, which differs from one instance of a block to the next)
            hint = (v.name or "x") if v.is_graph_input() else (f"x{i}" if i else "x")
            name = self.locals.new(hint, "x")
            params.append(name)
            self.bind(v, name)
        self._emit_items(scope)
        if any(self._is_sym(v) for v in outs):
            self._leave(saved, discard=True)
            return None
        rets = [self.expr_of(v, None) for v in outs]
        self.emit(f"return {rets[0]}" if len(rets) == 1 else f"return {', '.join(rets)}")
        body = self._finish_body(params, scope)
        self._leave(saved)
        return body

    def _emit_sequential(self, cont) -> bool:
        """A numbered container whose members feed one another: ``nn.Sequential``."""
        from .tree import boundary

        ins, outs = boundary(cont, self.model.graph)
        if len(ins) != 1 or len(outs) != 1 or self._is_sym(ins[0]):
            return False
        prev = ins[0]
        plan = []
        for c in cont.children:
            cin, cout = boundary(c, self.model.graph)
            if cin != [prev] or len(cout) != 1:
                return False
            plan.append((c, cin, cout))
            prev = cout[0]
        if prev is not outs[0]:
            return False
        mark = len(self._bodies), len(self.untrusted)
        bodies = []
        for c, cin, cout in plan:
            body = self._emit_class(c, cin, cout)
            if body is None:
                del self._bodies[mark[0]:]
                del self.untrusted[mark[1]:]
                return False
            bodies.append(body)
        ctor = "nn.Sequential(" + ", ".join(b.ctor for b in bodies) + ")"
        state = {f"{i}.{k}": v for i, b in enumerate(bodies) for k, v in b.state.items()}
        target = self._child_slot(cont.path[len(self.scope_path):], ctor, state)
        self._emit_call(target, ins, outs, cont)
        return True

    def _child_slot(self, rel: tuple[str, ...], ctor: str, state: dict) -> str:
        target = self._slot(rel, single=False)
        if isinstance(target, tuple):
            self.lists[target[0]][target[1]] = (ctor, state)
            return f"self.{target[0]}[{target[1]}]"
        if target is None:
            target = self.attrs.new("_".join(rel), "m")
            self.untrusted.append(".".join(self.scope_path + (target,)))
        self.modules[target] = _Module(target, ctor, state)
        return f"self.{target}"

    def _emit_call(self, target: str, ins, outs, scope) -> None:
        args = ", ".join(self.expr_of(v, None) for v in ins)
        names = [self.locals.new(self._value_hint(v), "v") for v in outs]
        self.emit(f"{', '.join(names)} = {target}({args})")
        for v, name in zip(outs, names):
            self.bind(v, name)

    def _value_hint(self, value: ir.Value) -> str:
        """A local name that does not depend on which instance of a block is written (so that
        identical blocks give identical code): the module the value comes from, relative to
        the class being written, else the op that made it."""
        node = value.producer()
        leaf = _leaf_path(node, self.scope_path) if node is not None else None
        if leaf:
            atoms = [a for a in leaf if not a.isdigit()] or list(leaf)
            return _TS_REPEAT.sub("", atoms[-1])
        name = value.name or ""
        if self.scope_path and node is not None and value.is_graph_output():
            name = node.op_type.lower()  # the graph's output name is one instance's only
        if name.startswith("/"):
            last = name.rstrip("/").rsplit("/", 1)[-1]
            last = re.sub(r"_output_\d+$", "", last)
            return _TS_REPEAT.sub("", last).lower() or "v"
        if node is not None and value.is_graph_input() is False and name:
            return _TS_REPEAT.sub("", name) or "v"
        return name or "x"

    def _finish_body(self, in_names: list[str], scope) -> "_Body":
        """The current class's code: forward source, __init__ lines and state."""
        forward_src = "\n".join("    " * ln.indent + ln.text for ln in self.lines)
        line_nodes = [ln.node for ln in self.lines]
        # tracked shape values that code uses as tensors become torch.tensor([...]) there
        for _ in range(64):
            new = re.sub(r"__s\d+__", lambda m: self._materialize(self.sym_ph[m.group(0)]),
                         forward_src)
            if new == forward_src:
                break
            forward_src = new
        # name only the constants the code actually refers to, in order of first use
        names = {}
        for ph in re.findall(r"self\.(__c\d+__)", forward_src):
            if ph not in names:
                value = self.pending[ph]
                tensor = value.const_value
                if self.flat or not self._tree:
                    attr = self.attrs.new(value.name or "const", "c")
                else:
                    attr = self._place(value.name or "const", {"": tensor},
                                       _first_user(value), "c", single=True)
                names[ph] = attr
                self.weights[attr] = _Weight(attr, tensor, tensor.dtype,
                                             tuple(tensor.shape.numpy()),
                                             parameter=learnable(tensor))
        if names:
            forward_src = re.sub(r"self\.(__c\d+__)", lambda m: "self." + names[m.group(1)],
                                 forward_src)
        forward_src, line_nodes = _free_dead_locals(forward_src, line_nodes)
        used = set()
        for ref in re.findall(r"self\.([A-Za-z_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)", forward_src):
            parts = ref.split(".")
            used.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        init_lines, state = [f"self.{h} = nn.Module()" for h in self.holders], {}
        for attr, mod in self.modules.items():
            init_lines.append(f"self.{attr} = {mod.ctor}")
            for k, v in mod.tensors.items():
                state[f"{attr}.{k}"] = v
        for attr, slots in self.lists.items():
            if not slots:
                continue
            items = [slots[i][0] if i in slots else "nn.Identity()"
                     for i in range(max(slots) + 1)]
            init_lines.append(f"self.{attr} = nn.ModuleList([{', '.join(items)}])")
            for i, (_, tensors) in slots.items():
                for k, v in tensors.items():
                    state[f"{attr}.{i}.{k}"] = v
        for attr, w in self.weights.items():
            if attr not in used:
                continue
            if w.dtype in COMPUTE_AS:
                arr = w.value if isinstance(w.value, np.ndarray) else w.value.numpy()
                w.value = arr.astype(compute_dtype(w.dtype).numpy())
            shape = py_literal(list(w.shape))
            dt = torch_dtype_src(w.dtype)
            empty = f"torch.empty({shape}, dtype={dt})"
            if w.parameter:
                init_lines.append(f"self.{attr} = nn.Parameter({empty})")
            else:
                owner, _, leaf = f"self.{attr}".rpartition(".")
                init_lines.append(f"{owner}.register_buffer({leaf!r}, {empty})")
            state[attr] = w.value
        body = _Body(len(self._bodies), scope, in_names, init_lines, forward_src, line_nodes,
                     state)
        self._bodies.append(body)
        return body

    def _assemble(self, root: "_Body") -> tuple[str, dict[str, Any]]:
        """One class per distinct body (identical blocks share one), children first."""
        cls_names = Namer(_RESERVED | set(self.helpers) | {"Model", "load", "nn", "F"})
        order: list[tuple] = []  # (class name, first body, __init__ text, parameters)
        resolved: dict[int, str] = {}  # body -> constructor call

        def text_of(b: _Body) -> tuple[str, str]:
            sub = lambda s: re.sub(r"__cls(\d+)__", lambda m: resolved[int(m.group(1))], s)
            return "\n".join(sub(ln) for ln in b.init_lines), b.forward_src

        # Blocks whose code differs only in the integers of __init__ (channel counts, strides
        # written out) are one class with those integers as constructor arguments.  Group
        # keys abstract the integers and the children's arguments; groups are written
        # deepest first (a group's key only names its children's groups).
        kids = {b.idx: [int(m) for m in re.findall(r"__cls(\d+)__", "\n".join(b.init_lines))]
                for b in self._bodies}
        height: dict[int, int] = {}
        gid: dict[int, int] = {}
        groups: dict[tuple, int] = {}
        members: list[list[_Body]] = []
        for b in self._bodies:  # children are finished before their parents
            height[b.idx] = 1 + max((height[k] for k in kids[b.idx]), default=0)
            if b is root:
                continue
            text = re.sub(r"__cls(\d+)__", lambda m: f"__G{gid[int(m.group(1))]}__",
                          "\n".join(b.init_lines))
            key = (tuple(b.in_names), b.forward_src, _INT.sub("#", text))
            g = groups.setdefault(key, len(members))
            if g == len(members):
                members.append([])
            members[g].append(b)
            gid[b.idx] = g
        for g in sorted(range(len(members)),
                        key=lambda g: (max(height[b.idx] for b in members[g]), g)):
            mem = members[g]
            texts = [text_of(b)[0] for b in mem]
            distinct = list(dict.fromkeys(texts))
            name = cls_names.new(_class_hint(mem[0].scope), "Block")
            name = name[0].upper() + name[1:]
            cls_names.taken.add(name)
            init_t, params, args = _parameterize(distinct)
            for b, t in zip(mem, texts):
                b.cls = name
                resolved[b.idx] = f"{name}({args[distinct.index(t)]})"
            order.append((name, mem, init_t, params))
        order.sort(key=lambda o: o[1][0].idx)
        state = {}
        for k, v in root.state.items():
            state[k] = v
        init_text, forward_src = text_of(root)
        header = _header(self.model, self.source_name)
        notes = self._tree_header()
        if notes:
            header += notes
        helpers_src = "\n\n".join(self.helpers[name].rstrip() for name in self.helpers)
        parts = [header, _IMPORTS_HELPERS if helpers_src else _IMPORTS]
        if helpers_src:
            parts.append(helpers_src + "\n")
        tree_record = self.record and self._tree
        if tree_record:
            parts.append(_RECORD_FN)
        lines_out: list = []  # (class name, body) in file order
        for name, mem, init_t, params in order:
            b = mem[0]
            fwd = b.forward_src
            cls = [f"class {name}(nn.Module):"]
            cls.append(f'    """{_class_doc(mem)}"""')
            cls.append("")
            cls += [f"    def __init__({', '.join(['self'] + params)}):",
                    "        super().__init__()"]
            if init_t:
                cls.append("\n".join(_wrap("        " + ln) for ln in init_t.split("\n")))
            sig = ", ".join(["self"] + b.in_names)
            cls += ["", f"    def forward({sig}):", fwd]
            parts.append("\n".join(cls) + "\n")
            lines_out.append((name, b))
        sig = ", ".join(["self"] + root.in_names)
        body = "\n".join(_wrap("        " + ln) for ln in init_text.split("\n")) if init_text else ""
        cls = [
            "class Model(nn.Module):",
            f'    """{_doc(self.model, self.source_name)}"""',
            "",
            "    def __init__(self):",
            "        super().__init__()",
        ]
        if body:
            cls.append(body)
        if self.record and not tree_record:
            cls += ["        self.recorder = None", "",
                    "    def record(self, node, name, value):",
                    "        if self.recorder is not None:",
                    "            self.recorder(node, name, value)"]
        if tree_record:
            cls += ["", "    @property", "    def recorder(self):", "        return _RECORDER[0]",
                    "", "    @recorder.setter", "    def recorder(self, fn):",
                    "        _RECORDER[0] = fn"]
        cls += ["", f"    def forward({sig}):", forward_src]
        parts.append("\n".join(cls) + "\n")
        lines_out.append(("Model", root))
        parts.append(_LOAD)
        source = parts[0] + "\n" + "\n\n\n".join(p.strip("\n") for p in parts[1:]) + "\n"
        self.line_of = _line_map(source, lines_out, self._bodies)
        self.classes = [o[0] for o in order]
        return source, state

    def node_texts(self, node_name: str) -> list[str]:
        """The (stripped) lines written for a node, in every class."""
        out = []
        for b in self._bodies:
            for text, node in zip(b.forward_src.split("\n"), b.line_nodes):
                if node == node_name and text.strip():
                    out.append(text.strip())
        return out

    def _tree_header(self) -> str:
        notes = list(self.tree_notes)
        if self._tree:
            notes.append("Module tree as recorded by the exporter: state-dict keys are the "
                         "original parameter paths.")
            names = sorted(set(self.untrusted))
            if names:
                notes.append(f"Except {len(names)}, named ..._folded: tensors the exporter "
                             "or converter transformed (BatchNorm folded into a conv,")
                notes.append("constant folding), which load_state_dict(original, strict=False) "
                             "leaves as converted:")
                for i in range(0, min(len(names), 12), 4):
                    notes.append("  " + ", ".join(names[i:i + 4]) + (
                        "," if i + 4 < min(len(names), 12) else
                        f" and {len(names) - 12} more." if len(names) > 12 else "."))
        return "".join(f"# {_comment_safe(n)}\n" for n in notes)


_TS_REPEAT = re.compile(r"_\d+$")
_EXPORTER_T = re.compile(r"val_\d+|onnx::MatMul_\d+")


def _first_user(value: ir.Value) -> ir.Node | None:
    for use in value.uses():
        node = use.node if hasattr(use, "node") else use[0]
        if _rewritten(node):
            return node
    return None


def _class_hint(scope) -> str:
    """A class name: the recorded class, else the module's name in CamelCase (a member of a
    numbered list is named after the list, singular: ``blocks.3`` -> ``Block``)."""
    if scope is None:
        return "Block"
    if scope.cls:
        name = scope.cls.rsplit(".", 1)[-1]
        name = _IDENT_RE.sub("", name)
        if name and not name[0].isdigit():
            return name
    atoms = list(scope.path)
    while atoms and atoms[-1].isdigit():
        atoms.pop()
        if atoms and atoms[-1].endswith("s") and len(atoms[-1]) > 3:
            atoms[-1] = atoms[-1][:-1]
        break
    word = _TS_REPEAT.sub("", atoms[-1]) if atoms else "block"
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^0-9a-zA-Z]+", word) if p) \
        or "Block"


def _class_doc(members: list) -> str:
    # only sanitized, identifier-like text from the model goes into a docstring
    scope = members[0].scope
    paths = [".".join(sanitize(p, "m") if not p.isdigit() else p for p in b.scope.path)
             for b in members if b.scope is not None]
    where = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    if scope is not None and scope.cls:
        cls = ".".join(sanitize(p, "m") for p in str(scope.cls).split("."))
        return f"{cls}: {where}."
    return f"Module {where}."


_INT = re.compile(r"(?<![\w.])\d+(?![\w.])")
_KNOWN_ARGS = {
    "Conv": ["in_channels", "out_channels"], "ConvTranspose": ["in_channels", "out_channels"],
    "Linear": ["in_features", "out_features"], "BatchNorm": ["num_features"],
    "InstanceNorm": ["num_features"], "LayerNorm": ["normalized_shape"],
    "RMSNorm": ["normalized_shape"], "GroupNorm": ["num_groups", "num_channels"],
    "Embedding": ["num_embeddings", "embedding_dim"], "LSTM": ["input_size", "hidden_size"],
    "GRU": ["input_size", "hidden_size"], "RNN": ["input_size", "hidden_size"],
}


def _wrap(line: str, width: int = 100) -> str:
    """``self.x = nn.Sequential(A(...), B(...))`` one member a line when it is too long."""
    m = re.match(r"(\s*self\.[\w.]+ = nn\.(?:Sequential\(|ModuleList\(\[))(.*)(\)|\]\))$", line)
    if len(line) <= width or m is None:
        return line
    indent = len(line) - len(line.lstrip())
    parts, depth, cur = [], 0, ""
    for c in m.group(2):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    parts.append(cur.strip())
    pad = " " * (indent + 4)
    return m.group(1) + "\n" + "".join(f"{pad}{p},\n" for p in parts) + " " * indent + m.group(3)


def _parameterize(texts: list[str]) -> tuple[str, list[str], list[str]]:
    """(__init__ text, parameter names, constructor arguments of each text) for __init__
    texts that differ only in integer literals: each differing literal becomes a parameter
    (one per distinct column of values), named after where it first appears."""
    if len(texts) == 1:
        return texts[0], [], [""]
    spans = [[(m.start(), m.end(), int(m.group())) for m in _INT.finditer(t)] for t in texts]
    n = len(spans[0])
    cols = [j for j in range(n) if len({sp[j][2] for sp in spans}) > 1]
    names = Namer(_RESERVED | {"self"})
    by_sig: dict[tuple, str] = {}
    col_name: dict[int, str] = {}
    for j in cols:
        sig = tuple(sp[j][2] for sp in spans)
        if sig not in by_sig:
            by_sig[sig] = names.new(_arg_name(texts[0], spans[0][j][0]), "n")
        col_name[j] = by_sig[sig]
    out, last = [], 0
    for j in cols:
        start, end, _ = spans[0][j]
        out.append(texts[0][last:start])
        out.append(col_name[j])
        last = end
    out.append(texts[0][last:])
    params = list(dict.fromkeys(col_name[j] for j in cols))
    args = []
    for sp in spans:
        vals = {}
        for j in cols:
            vals.setdefault(col_name[j], sp[j][2])
        args.append(", ".join(f"{p}={vals[p]}" for p in params))
    return "".join(out), params, args


def _arg_name(text: str, pos: int) -> str:
    """A name for the integer at ``pos`` of an __init__ line: the attribute and the argument
    it is passed as (``conv1_out_channels``, ``conv2_stride``, ``pos_embed_dim1``)."""
    start = text.rfind("\n", 0, pos) + 1
    line = text[start:pos]
    m = re.match(r"\s*self\.([\w.]+)\s*=|\s*self\.(?:[\w.]+\.)?register_buffer\('(\w+)'", line)
    attr = (m.group(1) or m.group(2)).replace(".", "_") if m else "arg"
    attr = attr.replace("_folded", "")
    stack: list[list] = []  # [callee, positional index, keyword, open char]
    i = 0
    while i < len(line):
        c = line[i]
        if c in "([":
            callee = re.search(r"([\w.]*)$", line[:i]).group(1)
            stack.append([callee, 0, None, c])
        elif c in ")]" and stack:
            stack.pop()
        elif c == "," and stack:
            stack[-1][1] += 1
            stack[-1][2] = None
        elif c == "=" and stack and line[i + 1:i + 2] != "=":
            kw = re.search(r"(\w+)\s*$", line[:i])
            if kw:
                stack[-1][2] = kw.group(1)
        i += 1
    label = "arg"
    for callee, idx, kw, ch in reversed(stack):
        if kw:
            label = kw
            break
        if ch == "[":
            label = f"dim{idx}"
            break
        if callee:
            base = re.sub(r"\d*d$", "", callee.rsplit(".", 1)[-1])
            known = _KNOWN_ARGS.get(base, [])
            label = known[idx] if idx < len(known) else f"arg{idx}"
            break
    return f"{attr}_{label}"


def _line_map(source: str, classes: list, bodies: list) -> dict[str, int]:
    """node name -> 1-based line of ``source`` whose code computes it (a block written once
    for many instances maps every instance's nodes to the class's lines)."""
    lines = source.split("\n")
    starts = {}
    for i, line in enumerate(lines):
        m = re.match(r"class (\w+)\(nn\.Module\):", line)
        if m:
            starts[m.group(1)] = i
    out: dict[str, int] = {}
    for b in bodies:
        name = b.cls or "Model"
        start = starts.get(name)
        if start is None:
            continue
        # forward's first line
        try:
            fwd = next(i for i in range(start, len(lines))
                       if lines[i].lstrip().startswith("def forward(")) + 1
        except StopIteration:
            continue
        for j, node in enumerate(b.line_nodes):
            if node is not None and node not in out:
                out[node] = fwd + j + 1
    return out




def _rewritten(node: ir.Node | None) -> bool:
    """The exporter's optimizer fused other ops' tensors into this node's (BatchNorm into Conv)."""
    if node is None:
        return False
    return "Fuse" in node.metadata_props.get("pkg.onnxscript.rewriter.rule_name", "")


def _leaf_path(node: ir.Node | None, scope_path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The module path a node was recorded in, relative to the class being written."""
    if node is None:
        return None
    from .tree import node_scope

    rec = node_scope(node)
    if rec is None:
        return None
    path = rec[0]
    n = len(scope_path)
    if path[:n] != scope_path or len(path) <= n:
        return None
    return path[n:]


# attribute names a generated module cannot take from the model (nn.Module's own, ours)
_MODULE_ATTRS = {"forward", "training", "record", "recorder", "parameters", "buffers",
                 "modules", "children", "state_dict", "load_state_dict", "register_buffer",
                 "register_parameter", "to", "cuda", "cpu", "eval", "train", "apply", "float",
                 "half", "double", "type", "zero_grad", "named_modules", "named_parameters"}


def _is_ident(name: str) -> bool:
    """A name the original model could have given an attribute (``self.self`` included)."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__") \
        and name not in _MODULE_ATTRS


def _free_dead_locals(forward_src: str, nodes: list | None = None) -> tuple[str, list]:
    """Add ``del a, b`` after the top-level statement of ``forward`` that uses a local for the
    last time, as a hand-written forward that rebinds ``x`` frees it: otherwise every
    intermediate tensor lives until forward returns (more memory, and fresh pages to fault in
    for every activation of every call).  Only names that a top-level assignment binds are
    deleted, after their last mention anywhere (nested blocks included).  ``nodes`` (the node of
    each line) is returned with the inserted lines' entries (None) added."""
    import ast

    lines = forward_src.split("\n")
    if nodes is None or len(nodes) != len(lines):
        nodes = [None] * len(lines)
    try:
        tree = ast.parse("class _C:\n    def _f(self):\n" + forward_src)
    except SyntaxError:
        return forward_src, nodes  # not ours to judge here; compile() reports it
    body = tree.body[0].body[0].body
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
           for stmt in body for n in ast.walk(stmt)):
        return forward_src, nodes  # a closure could read a local after its last mention
    bound: set[str] = set()
    last: dict[str, int] = {}
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
                bound.update(e.id for e in elts if isinstance(e, ast.Name))
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name):
                last[node.id] = i
    dead: dict[int, list[str]] = {}
    for name, i in last.items():
        if name in bound and i < len(body) - 1 and not isinstance(body[i], ast.Return):
            dead.setdefault(i, []).append(name)
    if not dead:
        return forward_src, nodes
    after = {body[i].end_lineno - 3: names for i, names in dead.items()}  # 0-based line
    out, out_nodes = [], []
    for j, line in enumerate(lines):
        out.append(line)
        out_nodes.append(nodes[j])
        if j in after:
            out.append("        del " + ", ".join(sorted(after[j], key=lambda n: last[n])))
            out_nodes.append(None)
    return "\n".join(out), out_nodes


def _short_hint(name: str, node: ir.Node) -> str:
    """Local variable names from tensor names, without exporter noise like '_output_0'."""
    hint = name
    for suffix in ("_output_0", ":0", "_0"):
        if hint.endswith(suffix) and len(hint) > len(suffix):
            hint = hint[: -len(suffix)]
            break
    hint = hint.strip("/").replace("/", "_").replace(".", "_")
    parts = [p for p in hint.split("_") if p]
    if len(parts) > 4:
        hint = "_".join(parts[-4:])
    return hint


def _header(model: ir.Model, source_name: str) -> str:
    producer = " ".join(filter(None, [model.producer_name, model.producer_version]))
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(model.opset_imports.items()))
    lines = [f"# Generated by nnport {__version__} from {_comment_safe(source_name)}.",
             f"# ONNX IR version {model.ir_version}, opsets: {_comment_safe(opsets)}."]
    if producer:
        lines.append(f"# Producer: {_comment_safe(producer)}.")
    return "\n".join(lines) + "\n"


def _comment_safe(text: str) -> str:
    """One printable ASCII line: control characters (NUL included) and non-ASCII are escaped."""
    text = " ".join(str(text).split())[:200]
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text.encode("ascii", "backslashreplace").decode()


def _doc(model: ir.Model, source_name: str) -> str:
    # Model-controlled text never goes into the docstring (only into sanitized comments).
    graph = sanitize(model.graph.name or "graph", "graph")
    return f"PyTorch port of the ONNX graph {graph}, generated by nnport."


_IMPORTS = """import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
"""

_IMPORTS_HELPERS = """import math
import os
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
"""

_RECORD_FN = '''_RECORDER = [None]


def _record(node, name, value):
    if _RECORDER[0] is not None:
        _RECORDER[0](node, name, value)
'''

_LOAD = '''def load(weights=None):
    """Build the model and load its weights (by default the .safetensors file beside this one)."""
    if weights is None:
        weights = os.path.splitext(os.path.abspath(__file__))[0] + ".safetensors"
    with torch.device("meta"):
        model = Model()
    model.load_state_dict(load_file(weights), assign=True)
    return model.eval()
'''
