"""Exception hierarchy.  Every error a user can cause is an NnportError whose str() is one line."""
from __future__ import annotations


class NnportError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits with code 2."""

    def __str__(self) -> str:  # never let a newline split the message
        return " ".join(super().__str__().split("\n"))


class InputError(NnportError):
    """The user's file, flag or value is wrong (missing, unreadable, not ONNX, bad shape...)."""


class ConversionError(NnportError):
    """A node could not be converted; the message names the node."""


class UnsupportedOpsError(NnportError):
    """Pre-flight found ops the target cannot convert.  Lists every one of them at once."""

    def __init__(self, target: str, unsupported: list[dict]):
        self.target = target
        self.unsupported = unsupported
        groups: dict[tuple, list[str]] = {}
        for item in unsupported:  # "why": the reason, where the op itself is mapped
            key = (item["domain"] or "ai.onnx", item["op_type"], item["opset"],
                   item.get("why") or "")
            groups.setdefault(key, []).append(item["node"])
        parts = []
        for (domain, op, opset, why), nodes in sorted(groups.items()):
            shown = ", ".join(repr(n) for n in nodes[:5])
            more = f" and {len(nodes) - 5} more" if len(nodes) > 5 else ""
            parts.append(f"{domain}::{op} (opset {opset}) at {shown}{more}" +
                         (f": {why}" if why else ""))
        super().__init__(
            f"{len(unsupported)} node(s) cannot be converted to {target}: " + "; ".join(parts)
        )


class VerificationError(NnportError):
    """A runtime failed while running a model for verification."""
