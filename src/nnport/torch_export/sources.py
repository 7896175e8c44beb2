"""Resolve an export source: ``file.py:factory``, ``package.module:attr``, a TorchScript file
(``.pt``/``.pth`` saved with ``torch.jit.save``), an ExportedProgram (``.pt2``,
``torch.export.save``) or an object (``nn.Module``, ScriptModule, ExportedProgram) into something torch can export."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InputError
from ..formats import PROGRAM_SUFFIXES, TORCHSCRIPT_SUFFIXES


@dataclass
class Source:
    kind: str  # "module" | "script" | "program"
    obj: object  # nn.Module, ScriptModule or ExportedProgram
    name: str
    input_names: list[str] = field(default_factory=list)
    # for ExportedPrograms: the example shapes/dtypes recorded in the program
    example_shapes: dict[str, tuple] = field(default_factory=dict)
    example_dtypes: dict[str, torch.dtype] = field(default_factory=dict)

    @property
    def module(self):
        """A callable taking the inputs positionally (for verification)."""
        if self.kind == "program":
            return self.obj.module()
        return self.obj


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def _import_file(path: Path, ref: str):
    if not path.is_file():
        raise InputError(f"{ref}: no such file {str(path)!r}")
    modname = "_nnport_src_" + re.sub(r"\W", "_", path.stem) + f"_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(modname, str(path))
    if spec is None or spec.loader is None:
        raise InputError(f"{ref}: cannot import {str(path)!r} as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    parent = str(path.resolve().parent)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)  # so the file can import its neighbours
    try:
        spec.loader.exec_module(mod)
    except BaseException as exc:  # (a user's file may raise anything, SystemExit too)
        sys.modules.pop(modname, None)
        raise InputError(f"{ref}: importing {str(path)!r} failed: {_one_line(exc)}") from None
    finally:
        if added:
            sys.path.remove(parent)
    return mod


def _import_module(name: str, ref: str):
    try:
        return importlib.import_module(name)
    except BaseException as exc:  # as above: anything a user's code raises
        raise InputError(f"{ref}: cannot import module {name!r} ({_one_line(exc)})") from None


def _instantiate(obj, ref: str, attr: str):
    if isinstance(obj, torch.nn.Module):
        return obj
    if inspect.isclass(obj) and not issubclass(obj, torch.nn.Module):
        raise InputError(f"{ref}: {attr!r} is the class {obj.__name__}, not a torch.nn.Module "
                         "subclass")
    if not callable(obj):
        raise InputError(f"{ref}: {attr!r} is a {type(obj).__name__}, expected a torch.nn.Module, "
                         "a Module class or a function returning one")
    what = "class" if inspect.isclass(obj) else "factory"
    try:
        sig = inspect.signature(obj)
        required = [p.name for p in sig.parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                           p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and p.name != "self"]
    except (TypeError, ValueError):
        required = []
    if required:
        raise InputError(f"{ref}: {what} {attr!r} needs arguments ({', '.join(required)}); "
                         "point to a function that takes none")
    try:
        result = obj()
    except BaseException as exc:  # as above: anything a user's code raises
        raise InputError(f"{ref}: {what} {attr!r} raised {_one_line(exc)}") from None
    if not isinstance(result, torch.nn.Module):
        raise InputError(f"{ref}: {what} {attr!r} returned a {type(result).__name__}, "
                         "expected a torch.nn.Module")
    return result


def _forward_names(module) -> list[str]:
    if isinstance(module, torch.jit.ScriptModule):
        try:
            args = module.forward.schema.arguments
            return [a.name for a in args if a.name != "self"]
        except Exception:
            return []
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return []
    names = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        names.append(p.name)
    return names


def _required_names(module) -> set[str]:
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return set(_forward_names(module))
    return {p.name for p in sig.parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _program_source(ep, name: str) -> Source:
    sig = ep.graph_signature
    user_inputs = list(sig.user_inputs)
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    shapes, dtypes = {}, {}
    for n in user_inputs:
        val = nodes[n].meta.get("val") if n in nodes else None
        if isinstance(val, torch.Tensor):
            shapes[n] = tuple(int(d) if isinstance(d, int) else int(d.node.hint)
                              if getattr(d.node, "hint", None) is not None else 2
                              for d in val.shape)
            dtypes[n] = val.dtype
    return Source("program", ep, name, user_inputs, shapes, dtypes)


def resolve_source(src) -> Source:
    """An object or a reference string -> :class:`Source` (one-line InputError when it fails)."""
    if isinstance(src, torch.export.ExportedProgram):
        return _program_source(src, "ExportedProgram")
    if isinstance(src, torch.jit.ScriptModule):
        return Source("script", src, type(src).__name__, _forward_names(src))
    if isinstance(src, torch.nn.Module):
        src.eval()
        return Source("module", src, type(src).__name__, _forward_names(src))
    if not isinstance(src, (str, os.PathLike)):
        raise InputError(f"cannot export an object of type {type(src).__name__} (expected a "
                         "torch.nn.Module, an ExportedProgram or a reference string)")
    ref = os.fspath(src)
    path = Path(ref)
    suffix = path.suffix.lower()
    if suffix in TORCHSCRIPT_SUFFIXES + PROGRAM_SUFFIXES and ":" not in path.name:
        if not path.is_file():
            raise InputError(f"{ref}: no such file")
        if suffix in PROGRAM_SUFFIXES:
            try:
                ep = torch.export.load(str(path))
            except Exception as exc:
                raise InputError(f"{ref}: not an ExportedProgram saved with torch.export.save "
                                 f"({_one_line(exc)})") from None
            return _program_source(ep, path.name)
        try:
            mod = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise InputError(f"{ref}: not a TorchScript file saved with torch.jit.save (a "
                             "state_dict saved with torch.save has no code: point to the Python "
                             f"class as file.py:Class instead) ({_one_line(exc)[:160]})") from None
        mod.eval()
        return Source("script", mod, path.name, _forward_names(mod))
    if ":" not in ref:
        raise InputError(f"{ref}: expected path/to/file.py:factory, package.module:attr, a "
                         "TorchScript .pt/.pth or an ExportedProgram .pt2")
    left, attr = ref.rsplit(":", 1)
    if not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise InputError(f"{ref}: {attr!r} is not an attribute name (expected MODULE:NAME)")
    if left.endswith(".py") or os.sep in left or "/" in left:
        mod = _import_file(Path(left), ref)
    else:
        if not all(part.isidentifier() for part in left.split(".")):
            raise InputError(f"{ref}: {left!r} is neither a .py file nor a module name")
        mod = _import_module(left, ref)
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{ref}: {left!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if isinstance(obj, torch.export.ExportedProgram):
        return _program_source(obj, attr)
    module = _instantiate(obj, ref, attr)
    module.eval()
    kind = "script" if isinstance(module, torch.jit.ScriptModule) else "module"
    return Source(kind, module, type(module).__name__, _forward_names(module))
