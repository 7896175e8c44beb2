"""Plain-torch helper functions copied verbatim into generated files when an op needs one.

Each helper is an ordinary, tested function here; ``Ctx.helper(name)`` copies its source (and
the helpers it lists in ``_nnport_deps``) into the generated module.  Helpers use only ``torch``,
``F`` (torch.nn.functional), ``math`` and ``List``/``Optional`` names the generated file imports.
Their names start with an underscore so they never clash with the model's own names.
"""
from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

_MODULES = ("h_basic", "h_rnn", "h_pads", "h_cnn", "h_math", "h_tensor", "h_resize", "h_quant",
            "h_detect", "h_contrib", "h_ml", "h_train")


@functools.lru_cache(maxsize=None)
def _index() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """name -> (module, source text, helper names it needs), read from the files with ``ast``:
    generating code copies helpers without importing torch."""
    out: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    deps: dict[str, tuple[str, ...]] = {}
    here = Path(__file__).resolve().parent
    for mod in _MODULES:
        text = (here / f"{mod}.py").read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                out[node.name] = (mod, "".join(lines[first - 1:node.end_lineno]), ())
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1
                  and isinstance(node.targets[0], ast.Attribute)
                  and node.targets[0].attr == "_nnport_deps"
                  and isinstance(node.targets[0].value, ast.Name)):
                deps[node.targets[0].value.id] = tuple(ast.literal_eval(node.value))
    return {k: (m, src, deps.get(k, ())) for k, (m, src, _) in out.items()}


def source(name: str) -> tuple[str, tuple[str, ...]]:
    """The source text of helper ``name`` and the helpers it calls (``_nnport_deps``)."""
    _mod, text, needs = _index()[name]
    return text, needs


def __getattr__(name: str):
    """``helpers._onnx_slice`` etc.: the function itself (imports its module, and torch)."""
    found = _index().get(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{found[0]}"), name)
