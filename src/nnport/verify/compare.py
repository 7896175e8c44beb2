"""Compare two runtimes' outputs with dtype-aware tolerances.

An output matches when ``max|a - b| <= atol + rtol * max|ref|`` (the error is measured against
the tensor's scale, not element by element, so values that cancel to ~0 inside a deep network do
not produce meaningless relative errors) and NaN/Inf positions agree.  Integer and bool outputs
must be equal.

Quantized tensors (``step``, see ``quant.py``) also match when they differ by at most one
quantization step: ``max|a - b| <= step`` (1 for the quantized integer types), the difference
float accumulation order makes at a rounding boundary.  Each report names the rule it used:
``dtype`` (the defaults below), ``explicit`` (tolerances given by the caller) or
``quant-step``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .quant import QUANT_INT_DTYPES

DEFAULT_TOL = {  # numpy dtype name -> (rtol, atol)
    "float64": (1e-7, 1e-9),
    "float32": (1e-4, 1e-6),
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-2),
    "complex64": (1e-4, 1e-6),
    "complex128": (1e-7, 1e-9),
}
_FLOAT8_TOL = (1.3e-1, 1e-2)


def default_tolerance(dtype: np.dtype) -> tuple[float, float]:
    name = np.dtype(dtype).name
    if name in DEFAULT_TOL:
        return DEFAULT_TOL[name]
    if name.startswith("float8") or name.startswith("float4"):
        return _FLOAT8_TOL
    return (0.0, 0.0)


@dataclass
class OutputReport:
    name: str
    dtype: str
    shape: list
    ok: bool
    max_abs_err: float
    max_rel_err: float
    cosine: float | None
    rtol: float
    atol: float
    note: str = ""
    rule: str = "dtype"  # dtype | explicit | quant-step
    quant_step: float | None = None  # in the tensor's units (1 for quantized integers)
    quant_source: str = ""  # the node whose scale gave the step


def _as_float(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    return a.astype(np.float64)


def compare_arrays(name: str, ref, got, rtol: float | None = None,
                   atol: float | None = None, step=None) -> OutputReport:
    """``step``: the tensor's quantization step (a ``quant.QuantStep``) or None.  It applies
    only with default tolerances: tolerances the caller gives are taken as they are."""
    rep = _compare(name, ref, got, rtol, atol, step)
    if rtol is not None or atol is not None:
        rep.rule = "explicit"
    return rep


def _compare(name, ref, got, rtol, atol, step) -> OutputReport:
    if ref is None or got is None:
        ok = ref is None and got is None
        return OutputReport(name, "none", [], ok, 0.0 if ok else float("inf"),
                            0.0 if ok else float("inf"), None, 0, 0,
                            "" if ok else "one side has no value")
    if isinstance(ref, list) and ref and all(isinstance(r, dict) for r in ref):
        return _compare_dicts(name, ref, got, rtol, atol)
    if isinstance(ref, list) or isinstance(got, list):
        ref_l = ref if isinstance(ref, list) else [ref]
        got_l = got if isinstance(got, list) else [got]
        if len(ref_l) != len(got_l):
            return OutputReport(name, "sequence", [len(ref_l)], False, float("inf"), float("inf"),
                                None, 0, 0, f"sequence lengths differ: {len(ref_l)} vs {len(got_l)}")
        reports = [_compare(f"{name}[{i}]", r, g, rtol, atol, None)
                   for i, (r, g) in enumerate(zip(ref_l, got_l))]
        worst = max(reports, key=lambda r: (not r.ok, r.max_rel_err), default=None)
        if worst is None:
            return OutputReport(name, "sequence", [0], True, 0.0, 0.0, None, 0, 0)
        return OutputReport(name, "sequence", [len(ref_l)], all(r.ok for r in reports),
                            worst.max_abs_err, worst.max_rel_err, worst.cosine, worst.rtol,
                            worst.atol, worst.note)
    ref = np.asarray(ref)
    got = np.asarray(got)
    d_rtol, d_atol = default_tolerance(ref.dtype)
    rtol_default, atol_default = rtol is None, atol is None
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    shape = list(ref.shape)
    if ref.shape != got.shape:
        return OutputReport(name, ref.dtype.name, shape, False, float("inf"), float("inf"), None,
                            rtol, atol, f"shape {list(got.shape)} != expected {shape}")
    if ref.dtype.kind in "OUS":
        ok = bool(np.array_equal(ref, got))
        return OutputReport(name, ref.dtype.name, shape, ok, 0.0 if ok else float("inf"),
                            0.0 if ok else float("inf"), None, 0, 0)
    if ref.size == 0:
        return OutputReport(name, ref.dtype.name, shape, True, 0.0, 0.0, None, rtol, atol)
    r = _as_float(ref)
    g = _as_float(got)
    note = ""
    nan_r, nan_g = np.isnan(r), np.isnan(g)
    inf_ok = True
    if r.dtype.kind != "c":
        inf_r, inf_g = np.isinf(r), np.isinf(g)
        inf_ok = bool(np.array_equal(inf_r, inf_g) and np.array_equal(r[inf_r], g[inf_g]))
        finite = ~(nan_r | inf_r)
    else:
        finite = ~nan_r
    nan_ok = bool(np.array_equal(nan_r, nan_g))
    if not nan_ok:
        note = "NaN positions differ"
    elif not inf_ok:
        note = "Inf positions differ"
    rf, gf = r[finite], g[finite]
    if rf.size:
        diff = np.abs(rf - gf)
        max_abs = float(np.nanmax(diff)) if diff.size else 0.0
        scale = float(np.max(np.abs(rf)))
    else:
        max_abs, scale = 0.0, 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    cosine = None
    if rf.size and r.dtype.kind != "c":
        nr, ng = np.linalg.norm(rf), np.linalg.norm(gf)
        cosine = float(np.dot(rf.ravel(), gf.ravel()) / (nr * ng)) if nr > 0 and ng > 0 else (
            1.0 if nr == ng else 0.0)
    if ref.dtype.kind in "biu" and rtol == 0 and atol == 0:
        ok = bool(np.array_equal(ref, got))
    else:
        ok = nan_ok and inf_ok and bool(np.isfinite(max_abs)) and max_abs <= atol + rtol * scale
    rep = OutputReport(name, ref.dtype.name, shape, ok, max_abs, max_rel, cosine, rtol, atol, note)
    if step is not None and rtol_default and atol_default:
        unit = _step_units(ref.dtype, step.step)
        if unit is not None:
            rep.rule, rep.quant_step, rep.quant_source = "quant-step", unit, step.source
            if not ok and nan_ok and inf_ok and bool(np.isfinite(max_abs)) and \
                    max_abs <= unit * (1 + 1e-5):
                rep.ok = True
                rep.note = "within one quantization step"
    return rep


def _compare_dicts(name: str, ref: list, got, rtol, atol) -> OutputReport:
    """A list of {label: score} dicts (ai.onnx.ml ZipMap): same keys in the same order, the
    values compared as one float32 array."""
    got_l = got if isinstance(got, list) else [got]
    got_l = [g.item() if isinstance(g, np.ndarray) and g.dtype == object and g.ndim == 0 else g
             for g in got_l]
    if len(got_l) != len(ref) or not all(isinstance(g, dict) for g in got_l):
        return OutputReport(name, "sequence", [len(ref)], False, float("inf"), float("inf"),
                            None, 0, 0, "expected a list of dicts of the same length")
    if any(list(r) != list(g) for r, g in zip(ref, got_l)):
        return OutputReport(name, "sequence", [len(ref)], False, float("inf"), float("inf"),
                            None, 0, 0, "dict keys differ")
    rep = _compare(name, np.asarray([list(r.values()) for r in ref], np.float32),
                   np.asarray([list(g.values()) for g in got_l], np.float32), rtol, atol, None)
    rep.dtype = "sequence(map)"
    return rep


def _step_units(dtype: np.dtype, step: float) -> float | None:
    """One quantization step in the tensor's units: 1 for quantized integers, the scale for
    floats, None (exact comparison) for other integers."""
    name = np.dtype(dtype).name
    if name in QUANT_INT_DTYPES:
        return 1.0
    if np.dtype(dtype).kind in "fc" and step > 0:
        return float(step)
    return None


@dataclass
class VerifyReport:
    a: str
    b: str
    inputs: dict
    outputs: list = field(default_factory=list)
    seed: int = 0

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "match": self.ok, "seed": self.seed,
                "inputs": self.inputs, "outputs": [asdict(o) for o in self.outputs]}

    def lines(self) -> list[str]:
        out = []
        for o in self.outputs:
            status = "ok" if o.ok else "MISMATCH"
            cos = f" cos={o.cosine:.6f}" if o.cosine is not None else ""
            note = f" ({o.note})" if o.note else ""
            if o.rule == "quant-step":
                tol = (f"rtol={o.rtol:g} atol={o.atol:g} or one quantization step "
                       f"{o.quant_step:g} of {o.quant_source}")
            else:
                tol = f"rtol={o.rtol:g} atol={o.atol:g}, {o.rule} rule"
            out.append(f"  {o.name} {o.dtype}{o.shape}: max_abs={o.max_abs_err:.3g} "
                       f"max_rel={o.max_rel_err:.3g}{cos} [{status}, {tol}]{note}")
        return out
