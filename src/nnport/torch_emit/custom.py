"""Map a custom-domain ONNX node back to your own PyTorch code (ONNX -> PyTorch direction).

::

    def upscale(x, scale, mode="bilinear"):          # inputs positionally, attributes by keyword
        s = float(scale)
        return torch.nn.functional.interpolate(x, scale_factor=s, mode=mode)

    # for one conversion (``nnport convert --custom-op my.domain::Upscale=ops.py:upscale``):
    nnport.convert("m.onnx", "m.py", custom_ops={"my.domain::Upscale": upscale})
    nnport.to_torch("m.onnx", custom_ops={"my.domain::Upscale": "mypkg.ops:upscale"})

    # or for every later conversion in this process:
    from nnport.torch_emit import custom
    custom.register("my.domain", "Upscale", upscale)   # the source is copied into model.py
    custom.register("my.domain", "Upscale", "mypkg.ops:upscale")  # or model.py imports it

``custom_ops`` travels with the conversion as its other options do (``registry_with`` builds the
registry that conversion looks ops up in); ``register`` changes the process-wide registry.

With a function, its source is copied into the generated file (renamed ``_custom_<op>``), so the
file stays standalone: the function may use only ``torch``, ``nn``, ``F`` (torch.nn.functional),
``math`` and ``List``/``Optional``/``Tuple``, like the rest of the generated code.  With a
``"module:attr"`` string the generated file imports that name instead (not standalone, but any code
works).  The function receives the node's inputs positionally (``None`` for a missing optional
one) and its attributes as keyword arguments, and returns a tensor or a tuple (one per output).
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Callable

from collections.abc import Mapping

from ..errors import InputError
from ..registry import Registry, norm_domain
from .emitter import REGISTRY

_REGISTERED: dict[tuple[str, str], dict] = {}


def _ident(text: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", text)
    return s if s and not s[0].isdigit() else "_" + s


def _function_source(fn: Callable, new_name: str) -> str:
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        raise InputError(f"custom op function {getattr(fn, '__name__', fn)!r}: its source is not "
                         "available; register it as a 'module:attr' import instead") from None
    tree = ast.parse(src)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(tree.body) != 1 or not defs:
        raise InputError(f"custom op function {fn.__name__!r}: expected a plain def (a lambda or "
                         "callable object cannot be copied; use a 'module:attr' import)")
    node = defs[0]
    node.name = new_name
    node.decorator_list = []
    return ast.unparse(tree) + "\n"


def _import_source(ref: str, new_name: str) -> str:
    if ":" not in ref:
        raise InputError(f"custom op import {ref!r}: expected 'package.module:function'")
    mod, attr = ref.split(":", 1)
    if not all(p.isidentifier() for p in mod.split(".")) or not attr.isidentifier():
        raise InputError(f"custom op import {ref!r}: expected 'package.module:function'")
    return f"from {mod} import {attr} as {new_name}\n"


def register(domain: str, op_type: str, fn: Callable | str, *, versions=(1,)) -> None:
    """Emit a call to ``fn`` for every ``domain::op_type`` node of every later conversion in
    this process (see the module docstring)."""
    _add(REGISTRY, domain, op_type, fn, versions)
    _REGISTERED[(norm_domain(domain), op_type)] = {"fn": fn, "name": _name(domain, op_type)}


def registry_with(custom_ops: Mapping[str, Callable | str] | None,
                  base: Registry = REGISTRY) -> Registry:
    """The registry one conversion uses: ``base`` when ``custom_ops`` is empty, else a copy of
    it with an emitter for each ``{"domain::op_type": fn or "module:function"}`` (``base`` is
    left as it was)."""
    if not custom_ops:
        return base
    reg = base.copy()
    for key, fn in custom_ops.items():
        domain, sep, op_type = str(key).rpartition("::")
        if not sep or not domain or not op_type:
            raise InputError(f"custom op {key!r}: expected 'domain::op_type'")
        _add(reg, domain, op_type, fn, (1,))
    return reg


def _name(domain: str, op_type: str) -> str:
    return f"_custom_{_ident(norm_domain(domain))}_{_ident(op_type)}"


def _add(registry: Registry, domain: str, op_type: str, fn: Callable | str, versions) -> None:
    """Register into ``registry`` an emitter calling ``fn``, replacing the op's emitters."""
    dom = norm_domain(domain)
    if not dom:
        raise InputError(f"custom op {op_type!r}: give its custom domain (the standard ONNX "
                         "domain has its own converters)")
    name = _name(dom, op_type)
    src = _import_source(fn, name) if isinstance(fn, str) else _function_source(fn, name)
    registry.ops().pop((dom, op_type), None)

    def emit(ctx, *inputs, **attrs):
        if ctx.gen.helpers.get(name, src) != src:
            ctx.fail(f"two registrations share the generated name {name}")
        ctx.gen.helpers[name] = src
        args = [a if a is not None else "None" for a in inputs]
        plain, odd = [], {}
        for key, value in attrs.items():
            if isinstance(value, list) and value and not isinstance(
                    value[0], (int, float, str, bool)) and not hasattr(value[0], "tolist"):
                ctx.fail(f"attribute {key!r} (a graph) cannot be passed to a custom function")
            lit = ctx.lit(value)
            if key.isidentifier():
                plain.append(f"{key}={lit}")
            else:
                odd[key] = lit
        if odd:
            plain.append("**{" + ", ".join(f"{k!r}: {v}" for k, v in odd.items()) + "}")
        return f"{name}({', '.join(list(args) + plain)})"

    registry.register(op_type, versions, domain=dom)(emit)


def unregister(domain: str, op_type: str) -> None:
    key = (norm_domain(domain), op_type)
    _REGISTERED.pop(key, None)
    REGISTRY.ops().pop(key, None)


def registered() -> list[tuple[str, str]]:
    return sorted(_REGISTERED)
