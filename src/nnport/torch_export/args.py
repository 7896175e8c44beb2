"""Parsing of the export flags (``--dynamic``, ``--input-shape``/``--check-shape`` for export);
no torch here: ``nnport convert`` parses them on every run."""
from __future__ import annotations

import re

from ..errors import InputError

_DIM_RE = re.compile(r"^\s*(\d+)\s*(?::\s*([A-Za-z_][A-Za-z0-9_]*))?\s*$")


def parse_dynamic_arg(text: str) -> tuple[str, dict[int, str]]:
    """``x=0:batch,2:height`` -> ("x", {0: "batch", 2: "height"}); a bare axis gets a name."""
    if "=" not in text:
        raise InputError(f"--dynamic {text!r}: expected NAME=AXIS:DIMNAME,... (e.g. x=0:batch)")
    name, spec = (s.strip() for s in text.split("=", 1))
    if not name:
        raise InputError(f"--dynamic {text!r}: missing input name before '='")
    axes: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = _DIM_RE.match(part)
        if not m:
            raise InputError(f"--dynamic {text!r}: {part!r} is not AXIS or AXIS:DIMNAME "
                             "(DIMNAME an identifier)")
        axis = int(m.group(1))
        axes[axis] = m.group(2) or f"{re.sub(r'[^0-9A-Za-z_]', '_', name)}_dim{axis}"
    if not axes:
        raise InputError(f"--dynamic {text!r}: no axes given")
    return name, axes


def parse_export_shape(text: str, flag: str = "--input-shape") -> tuple[str, tuple[int, ...]]:
    from ..verify.inputs import parse_shape_arg

    try:
        name, shape = parse_shape_arg(text)
    except InputError as exc:
        raise InputError(str(exc).replace("--input-shape", flag)) from None
    if any(d is None for d in shape):
        raise InputError(f"{flag} {text!r}: export needs concrete dims ('?' is not allowed)")
    return name, shape
