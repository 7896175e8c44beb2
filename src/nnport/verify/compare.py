"""Compare two runtimes' outputs with dtype-aware tolerances.

An output matches when ``max|a - b| <= atol + rtol * max|ref|`` (the error is measured against
the tensor's scale, not element by element, so values that cancel to ~0 inside a deep network do
not produce meaningless relative errors) and NaN/Inf positions agree.  Integer and bool outputs
must be equal.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

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


def _as_float(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        return a.astype(np.complex128)
    return a.astype(np.float64)


def compare_arrays(name: str, ref, got, rtol: float | None = None,
                   atol: float | None = None) -> OutputReport:
    if ref is None or got is None:
        ok = ref is None and got is None
        return OutputReport(name, "none", [], ok, 0.0 if ok else float("inf"),
                            0.0 if ok else float("inf"), None, 0, 0,
                            "" if ok else "one side has no value")
    if isinstance(ref, list) or isinstance(got, list):
        ref_l = ref if isinstance(ref, list) else [ref]
        got_l = got if isinstance(got, list) else [got]
        if len(ref_l) != len(got_l):
            return OutputReport(name, "sequence", [len(ref_l)], False, float("inf"), float("inf"),
                                None, 0, 0, f"sequence lengths differ: {len(ref_l)} vs {len(got_l)}")
        reports = [compare_arrays(f"{name}[{i}]", r, g, rtol, atol)
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
    return OutputReport(name, ref.dtype.name, shape, ok, max_abs, max_rel, cosine, rtol, atol, note)


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
            out.append(f"  {o.name} {o.dtype}{o.shape}: max_abs={o.max_abs_err:.3g} "
                       f"max_rel={o.max_rel_err:.3g}{cos} [{status}, rtol={o.rtol:g} "
                       f"atol={o.atol:g}]{note}")
        return out
