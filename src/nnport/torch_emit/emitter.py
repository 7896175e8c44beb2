"""The API the op emitters (``torch_emit/ops/op_*.py``) are written against.

An emitter is registered for an ONNX op with :func:`register` and called with a :class:`Ctx`,
the node's inputs as :class:`Arg` strings (the Python expression holding the value, with
``.value`` pointing to the onnx_ir Value) and the attributes as keyword arguments.  It returns
an expression (or one per output), or ``None`` when it assigned ``ctx.out_names`` itself.

This module is that contract and nothing else: what an emitter may ask about its inputs, how it
writes lines, registers weights and submodules, and fails.  The graph walker that calls the
emitters is codegen.py; where weights land in the module tree is placement.py.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import onnx_ir as ir

from ..dtypes import torch_dtype_src
from ..errors import ConversionError
from ..irutil import iter_nodes  # used here; also re-exported for emitters
from ..registry import Registry, model_opsets, norm_domain  # model_opsets: re-exported
from .naming import py_literal

if TYPE_CHECKING:
    from .codegen import CodeGen

REGISTRY = Registry("torch")
register = REGISTRY.register


class Arg(str):
    """An input of a node: the expression that holds it, plus its onnx_ir Value."""

    value: ir.Value | None

    def __new__(cls, expr: str, value: ir.Value | None):
        obj = super().__new__(cls, expr)
        obj.value = value
        return obj


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
        """Register a submodule (e.g. ``nn.Conv2d(...)``) with its state; returns ``self.x``.
        torch's layers hold floating-point tensors only (their parameters require grad): an
        integer or boolean weight, which the op's ONNX type constraints forbid too, is refused
        here by name rather than failing when the module is built."""
        for key, t in tensors.items():
            if t is None or key == "num_batches_tracked":  # BatchNorm's int64 counter
                continue
            dt = ir.DataType.from_numpy(t.dtype) if isinstance(t, np.ndarray) else t.dtype
            if dt is not None and not dt.is_floating_point():
                self.fail(f"its {key} is {dt.name.lower()}; {ctor.split('(')[0]} takes "
                          "floating-point tensors (so does the ONNX op)")
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

    def note(self, text: str) -> None:
        """A comment line for the generated file's header (written once)."""
        self.gen.note(text)

    @property
    def control_flow(self) -> str:
        """How an If on a runtime value is written: ``"if"`` (Python) or ``"cond"``."""
        return self.gen.control_flow

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

