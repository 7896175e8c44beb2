"""Input specs from an ONNX model, shape overrides, and seeded random inputs."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .. import limits
from ..errors import InputError


@dataclass
class InputSpec:
    name: str
    dtype: np.dtype  # numpy dtype (ml_dtypes for bfloat16/float8)
    shape: tuple  # ints, or str/None for symbolic/unknown dims
    onnx_dtype: ir.DataType | None = None


def specs_from_model(model: ir.Model) -> list[InputSpec]:
    """The real inputs (initializers listed as inputs by old IR versions are weights)."""
    inits = set(model.graph.initializers)
    out = []
    for v in model.graph.inputs:
        if v.name in inits:
            continue
        if not isinstance(v.type, ir.TensorType):
            out.append(InputSpec(v.name, np.dtype(object), (), None))
            continue
        dt = v.dtype
        shape = tuple(
            d if isinstance(d, int) else (d.value if isinstance(d, ir.SymbolicDim) else None)
            for d in (v.shape.dims if v.shape is not None else ())
        ) if v.shape is not None else None
        try:
            npdt = dt.numpy()
        except Exception:
            npdt = np.dtype(object)
        out.append(InputSpec(v.name, npdt, shape, dt))
    return out


_SHAPE_RE = re.compile(r"^\s*([^=]+?)\s*=\s*(.*)$")


def parse_shape_arg(text: str) -> tuple[str, tuple]:
    """``NAME=1,3,224,224`` -> (NAME, (1, 3, 224, 224)); ``?`` keeps a dim symbolic."""
    m = _SHAPE_RE.match(text)
    if not m:
        raise InputError(f"--input-shape {text!r}: expected NAME=D1,D2,... (e.g. input=1,3,224,224)")
    name, dims = m.group(1), m.group(2).strip()
    out = []
    for d in filter(None, (x.strip() for x in dims.split(","))) if dims else []:
        if d == "?":
            out.append(None)
            continue
        try:
            n = int(d)
        except ValueError:
            raise InputError(f"--input-shape {text!r}: dim {d!r} is not an integer") from None
        if n < 0:
            raise InputError(f"--input-shape {text!r}: negative dim {n}")
        out.append(n)
    return name, tuple(out)


def parse_input_arg(text: str) -> tuple[str, np.ndarray]:
    """``NAME=file.npy`` -> (NAME, array)."""
    if "=" not in text:
        raise InputError(f"--input {text!r}: expected NAME=file.npy")
    name, path = text.split("=", 1)
    if not os.path.isfile(path):
        raise InputError(f"--input {text!r}: no such file {path!r}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"--input {text!r}: cannot read {path!r} as .npy ({exc})") from None
    return name.strip(), arr


def _default_dim(spec: InputSpec, axis: int, sym: str | None, known: dict) -> int:
    if sym is not None and sym in known:
        return known[sym]
    rank = len(spec.shape)
    if axis == 0:
        val = 1
    elif rank == 4 and axis >= 2 or rank == 3 and axis == 2 and spec.dtype.kind == "f":
        val = 64  # image/sequence-of-features spatial dims
    else:
        val = 8
    if sym is not None:
        known[sym] = val
    return val


def resolve_shapes(specs: list[InputSpec], overrides: dict[str, tuple] | None) -> dict[str, tuple]:
    """Concrete shapes for every input; symbolic dims shared by name stay equal."""
    overrides = dict(overrides or {})
    names = {s.name for s in specs}
    for name in overrides:
        if name not in names:
            raise InputError(f"--input-shape {name}: the model has no input {name!r} "
                             f"(inputs: {', '.join(sorted(names)) or 'none'})")
    known: dict[str, int] = {}
    # first pass: learn symbolic dims from overrides
    for s in specs:
        if s.name in overrides and s.shape is not None:
            shp = overrides[s.name]
            if len(shp) != len(s.shape):
                raise InputError(f"--input-shape {s.name}: model input has rank {len(s.shape)}, "
                                 f"got {len(shp)} dims {list(shp)}")
            for d, o in zip(s.shape, shp):
                if isinstance(d, int) and o is not None and o != d:
                    raise InputError(f"--input-shape {s.name}: dim {o} does not fit the "
                                     f"model's static shape {list(s.shape)}")
                if isinstance(d, str) and o is not None:
                    known[d] = o
    out = {}
    for s in specs:
        if s.shape is None:
            if s.name in overrides:
                out[s.name] = tuple(overrides[s.name])
                continue
            raise InputError(f"input {s.name!r} has an unknown rank; give --input-shape {s.name}=...")
        given = overrides.get(s.name)
        dims = []
        for i, d in enumerate(s.shape):
            if given is not None and given[i] is not None:
                dims.append(given[i])
            elif isinstance(d, int):
                dims.append(d)
            else:
                dims.append(_default_dim(s, i, d, known))
        out[s.name] = tuple(dims)
    return out


def random_inputs(specs: list[InputSpec], shapes: dict[str, tuple], seed: int = 0,
                  provided: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    provided = provided or {}
    names = {s.name for s in specs}
    for name in provided:
        if name not in names:
            raise InputError(f"--input {name}: the model has no input {name!r}")
    feeds = {}
    for s in specs:
        if s.name in provided:
            arr = provided[s.name]
            if s.dtype != object and arr.dtype != s.dtype:
                arr = arr.astype(s.dtype)
            feeds[s.name] = arr
            continue
        shape = shapes[s.name]
        limits.check_elements(shape, f"input {s.name!r}")  # before allocating it
        kind = s.dtype.kind
        if s.dtype == object:
            raise InputError(f"input {s.name!r} is not a tensor (sequence/map/optional); "
                             "give it with --input")
        if s.onnx_dtype is not None and s.onnx_dtype.is_floating_point():
            arr = rng.standard_normal(shape).astype(np.float32).astype(s.dtype)
        elif kind == "b":
            arr = rng.integers(0, 2, shape).astype(bool)
        elif kind in "iu":
            arr = rng.integers(0, 4, shape).astype(s.dtype)
        elif kind == "c":
            arr = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(s.dtype)
        else:
            arr = rng.standard_normal(shape).astype(s.dtype)
        feeds[s.name] = arr
    return feeds
