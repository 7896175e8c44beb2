"""Op registries: (domain, op_type, since_version) -> emitter.

An emitter is registered for the spec versions it was reviewed against.  Lookup for a model
opset picks the newest registration whose ``since`` is <= that opset, so an opset-21 model finds
the Flatten-13 emitter.  ``reviewed_versions`` lets the coverage test fail when the installed
onnx defines a version of a registered op that nobody has looked at.
"""
from __future__ import annotations

import bisect
import inspect
import keyword
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Protocol

DEFAULT_DOMAINS = ("", "ai.onnx")


def norm_domain(domain: str | None) -> str:
    return "" if domain in (None, "", "ai.onnx") else domain


class _HasOpsets(Protocol):
    @property
    def opset_imports(self) -> Mapping[str, int]: ...


def model_opsets(model: _HasOpsets) -> dict[str, int]:
    """The model's opset per (normalized) domain; the default domain is at least 1."""
    out = {norm_domain(dom): ver for dom, ver in model.opset_imports.items()}
    out.setdefault("", 1)
    return out


@dataclass
class Emitter:
    op_type: str
    domain: str
    since: int
    versions: tuple[int, ...]
    fn: Callable
    signature: inspect.Signature = field(init=False, repr=False)

    def __post_init__(self):
        self.signature = inspect.signature(self.fn)
        params = list(self.signature.parameters.values())[1:]  # skip ctx
        self.n_positional = sum(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
        )
        self.variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
        self.attr_names = {
            p.name for p in params if p.kind == p.KEYWORD_ONLY
        }
        self.any_attrs = any(p.kind == p.VAR_KEYWORD for p in params)


class Registry:
    def __init__(self, target: str):
        self.target = target
        self._ops: dict[tuple[str, str], list[Emitter]] = {}

    def register(self, op_type: str | Iterable[str], versions: Iterable[int] | int = 1,
                 domain: str = "") -> Callable:
        """Decorator.  ``versions``: the spec versions this emitter implements (the first is
        its ``since``).  Several op types may share one emitter."""
        if isinstance(versions, int):
            versions = (versions,)
        versions = tuple(sorted(versions))
        names = [op_type] if isinstance(op_type, str) else list(op_type)

        def deco(fn):
            for name in names:
                em = Emitter(name, norm_domain(domain), versions[0], versions, fn)
                lst = self._ops.setdefault((em.domain, name), [])
                lst.append(em)
                lst.sort(key=lambda e: e.since)
            return fn

        return deco

    def lookup(self, domain: str, op_type: str, opset: int) -> Emitter | None:
        lst = self._ops.get((norm_domain(domain), op_type))
        if not lst:
            return None
        sinces = [e.since for e in lst]
        i = bisect.bisect_right(sinces, opset)
        return lst[i - 1] if i else None

    def ops(self) -> dict[tuple[str, str], list[Emitter]]:
        return self._ops

    def copy(self) -> Registry:
        """A registry with the same emitters, registered into without changing this one."""
        new = Registry(self.target)
        new._ops = {key: list(ems) for key, ems in self._ops.items()}
        return new

    def reviewed_versions(self, domain: str, op_type: str) -> set[int]:
        out: set[int] = set()
        for em in self._ops.get((norm_domain(domain), op_type), []):
            out.update(em.versions)
        return out


def py_attr_name(name: str) -> str:
    """Attribute names that are Python keywords are passed with a trailing underscore."""
    return name + "_" if keyword.iskeyword(name) else name
