"""Custom operators: map a PyTorch op that ONNX does not know onto ONNX nodes.

Two exporters, two hooks (both documented in the README of examples/ and tested):

* dynamo (the default exporter): an **onnxscript function** per torch op, handed to
  ``torch.onnx.export(custom_translation_table=...)``::

      import onnxscript
      from onnxscript import opset18 as op
      from nnport.torch_export import custom_ops

      @custom_ops.register(torch.ops.mylib.upscale.default)
      def upscale(x, scale):
          return op.Resize(x, None, op.Concat(op.Constant(value_floats=[1.0, 1.0]), scale, scale,
                                              axis=0), mode="linear")

  The function may emit standard ONNX ops (then onnxruntime runs the model) or a node of your own
  domain (``onnxscript.values.Opset("my.domain", 1)``), which ``nnport.torch_emit.custom`` can
  map back to PyTorch code.

* torchscript exporter: a symbolic function, registered with
  ``torch.onnx.register_custom_op_symbolic``::

      custom_ops.register_symbolic("mylib::upscale", lambda g, x, s: g.op("Resize", ...), opset=11)

A module ONNX does not know: wrap its forward in a ``torch.library.custom_op`` (with a
``register_fake`` for shapes) and register a translation for that op.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputError

_TABLE: dict = {}
_SYMBOLICS: dict[str, tuple[Callable, int]] = {}


def _normalize_target(target):
    if isinstance(target, torch._ops.OpOverloadPacket):
        return target.default
    if isinstance(target, str):
        ns, _, name = target.partition("::")
        if not name:
            raise InputError(f"custom op {target!r}: expected 'namespace::name'")
        try:
            return getattr(getattr(torch.ops, ns), name).default
        except (AttributeError, RuntimeError):
            raise InputError(f"custom op {target!r}: no such torch operator (is the library that "
                             "defines it imported?)") from None
    if isinstance(target, torch._ops.OpOverload) or callable(target):
        return target
    raise InputError(f"custom op target {target!r}: expected a torch op (torch.ops.ns.name)")


def register(target, fn: Callable | None = None):
    """Map ``target`` (``torch.ops.ns.name[.overload]`` or ``"ns::name"``) to an onnxscript
    function for the dynamo exporter.  Usable as ``register(op, fn)`` or as a decorator."""
    key = _normalize_target(target)

    def deco(f):
        _TABLE[key] = f
        return f

    return deco(fn) if fn is not None else deco


def register_symbolic(name: str, fn: Callable, opset: int = 9) -> None:
    """Map ``"ns::name"`` to a TorchScript-exporter symbolic function ``fn(g, *inputs)``."""
    if "::" not in name:
        raise InputError(f"custom op {name!r}: expected 'namespace::name'")
    torch.onnx.register_custom_op_symbolic(name, fn, opset)
    _SYMBOLICS[name] = (fn, opset)


def unregister(target) -> None:
    """Remove a registration (dynamo table entry and/or TorchScript symbolic)."""
    if isinstance(target, str) and target in _SYMBOLICS:
        _, opset = _SYMBOLICS.pop(target)
        torch.onnx.unregister_custom_op_symbolic(target, opset)
        return
    _TABLE.pop(_normalize_target(target), None)


def translation_table(extra: dict | None = None) -> dict:
    """The table passed to the dynamo exporter: the registered entries plus ``extra``."""
    table = dict(_TABLE)
    for k, v in (extra or {}).items():
        table[_normalize_target(k)] = v
    return table


def op_name(target) -> str:
    """``aten::upsample_bicubic2d`` style name of a torch op (for messages)."""
    if isinstance(target, torch._ops.OpOverload):
        return target.name()
    return getattr(target, "__qualname__", None) or str(target)


_ATTR_TYPES = {float: "FLOAT", int: "INT", str: "STRING", "floats": "FLOATS", "ints": "INTS",
               "strings": "STRINGS"}


def custom_node(domain: str, op_type: str, *, inputs: int = 1, outputs: int = 1,
                attributes: dict | None = None, version: int = 1):
    """An onnxscript op for a node of your own domain, callable inside a translation function::

        SoftClip = custom_ops.custom_node("my.ops", "SoftClip", attributes={"limit": float})

        @custom_ops.register(torch.ops.mylib.softclip.default)
        def softclip(x, limit: float):
            return SoftClip(x, limit=limit)

    The node's schema (``inputs`` tensors, ``outputs`` tensors, ``attributes``: name -> float,
    int, str or "floats"/"ints"/"strings") is registered with ``onnx.defs`` so the exporter can
    build it.  onnxruntime cannot run such a node; ``nnport.torch_emit.custom`` maps it back to
    PyTorch code."""
    import onnx
    import onnxscript
    from onnx.defs import OpSchema

    if not domain or domain == "ai.onnx":
        raise InputError(f"custom node {op_type!r}: give it a domain of your own")
    if not onnx.defs.has(op_type, version, domain):
        param = OpSchema.FormalParameter
        attrs = []
        for name, kind in (attributes or {}).items():
            if kind not in _ATTR_TYPES:
                raise InputError(f"custom node {op_type!r}: attribute {name!r} has type {kind!r}; "
                                 "use float, int, str, 'floats', 'ints' or 'strings'")
            attrs.append(OpSchema.Attribute(name, getattr(OpSchema.AttrType, _ATTR_TYPES[kind]),
                                            "", required=False))
        schema = OpSchema(op_type, domain, version,
                          inputs=[param(f"input_{i}", "T") for i in range(inputs)],
                          outputs=[param(f"output_{i}", "T") for i in range(outputs)],
                          type_constraints=[("T", ["tensor(float)", "tensor(double)",
                                                   "tensor(float16)", "tensor(bfloat16)",
                                                   "tensor(int64)", "tensor(int32)",
                                                   "tensor(bool)"], "")],
                          attributes=attrs)
        try:
            onnx.defs.register_schema(schema)
        except Exception as exc:  # already registered by an earlier call
            if "already" not in str(exc).lower():
                raise
    return getattr(onnxscript.values.Opset(domain, version), op_type)
