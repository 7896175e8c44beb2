"""How things from the model are spelled in the generated Python.

Names in an ONNX file are arbitrary strings (``/layer1/layer1.0/conv1/Conv_output_0``,
``onnx::MatMul_123``, names with NUL bytes or non-ASCII); the generated file needs legal,
unique, readable identifiers for locals, attributes and classes, exact literals for constants,
and comments that cannot break the file.  Everything that turns model text into source text is
here, so the code walker and the assembler never spell a name themselves.
"""
from __future__ import annotations

import builtins
import keyword
import math
import re
from typing import Any, Iterable

import numpy as np
import onnx_ir as ir

# Names the generated module itself uses; values from the model never take them.
RESERVED = {"torch", "nn", "F", "os", "math", "self", "load_file", "Model", "load", "Optional",
            "List", "Tuple"} | set(dir(builtins))
_IDENT_RE = re.compile(r"[^0-9a-zA-Z_]")


def sanitize(name: str, default: str = "v") -> str:
    """Turn any string into a Python identifier (no uniqueness)."""
    name = _IDENT_RE.sub("_", name or "")
    name = re.sub(r"_+", "_", name).strip("_")
    if not name:
        name = default
    if name[0].isdigit():
        name = f"{default}_{name}"
    if keyword.iskeyword(name) or name in RESERVED or name.startswith("__"):
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


TS_REPEAT = re.compile(r"_\d+$")


def class_hint(scope) -> str:
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
    word = TS_REPEAT.sub("", atoms[-1]) if atoms else "block"
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^0-9a-zA-Z]+", word) if p) \
        or "Block"


def camel(word: str) -> str:
    """``downsample_0`` -> ``Downsample0``; ``patch_embed`` -> ``PatchEmbed``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^0-9a-zA-Z]+", word) if p)


def group_class_hint(scopes: list) -> str:
    """A class name for one class written for several blocks: ``class_hint`` of the first,
    except for unrecorded classes whose blocks are items of numbered lists (``layer1.0``,
    ``layer2.1``: the TorchScript exporter records scopes, not classes), which are named after
    the lists' stem (``LayerBlock``), not after one list of them."""
    first = scopes[0] if scopes else None
    if first is None or first.cls:
        return class_hint(first)
    stems = set()
    for sc in scopes:
        atoms = list(sc.path)
        if len(atoms) < 2 or not atoms[-1].isdigit() or not re.search(r"\d$", atoms[-2]):
            return class_hint(first)
        stems.add((tuple(atoms[:-2]), re.sub(r"_?\d+$", "", atoms[-2])))
    stem = next(iter(stems))[1]
    if len(stems) != 1 or not stem:
        return class_hint(first)
    word = camel(stem)
    return word if word.lower().endswith("block") else word + "Block"


# attribute names a generated module cannot take from the model (nn.Module's own, ours)
_MODULE_ATTRS = {"forward", "training", "record", "recorder", "parameters", "buffers",
                 "modules", "children", "state_dict", "load_state_dict", "register_buffer",
                 "register_parameter", "to", "cuda", "cpu", "eval", "train", "apply", "float",
                 "half", "double", "type", "zero_grad", "named_modules", "named_parameters"}


def is_ident(name: str) -> bool:
    """A name the original model could have given an attribute (``self.self`` included)."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__") \
        and name not in _MODULE_ATTRS


def short_hint(name: str, node: ir.Node) -> str:
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


def comment_safe(text: str) -> str:
    """One printable ASCII line: control characters (NUL included) and non-ASCII are escaped."""
    text = " ".join(str(text).split())[:200]
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text.encode("ascii", "backslashreplace").decode()

