"""Build every model of the model-level test suite, convert it with nnport, verify it against
onnxruntime, and print a Markdown table (quoted in the README).

    python benchmarks/verified_models.py            # all models
    python benchmarks/verified_models.py --quick    # skip the heavier ones
    python benchmarks/verified_models.py -k bert    # names containing "bert"

Models are built in-process (tests/models/builders.py): the ONNX "light" zoo graphs with seeded
random weights, small torch models and transformers configs exported with both torch.onnx
exporters, and hand-written graphs in old-opset / paddle2onnx / tf2onnx styles.  Dynamic models
are verified at two input shapes with one converted module; the table shows the worst error.
Exits 0 (``--strict``: 1 when a model fails).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, ROOT)


def _short(msg: str, n: int = 120) -> str:
    msg = " ".join(str(msg).split()).replace("|", "\\|")
    return msg if len(msg) <= n else msg[: n - 3] + "..."


def run_case(case) -> dict:
    import nnport
    from nnport.convert import generate_torch
    from nnport.torch_emit import build_module

    from tests.models.builders import count_params, opset_of

    row = {"model": case.name, "source": case.source, "opset": "", "nodes": "", "params": "",
           "abs": None, "rel": None, "result": "", "seconds": 0.0}
    t0 = time.perf_counter()
    try:
        model = case.model()
    except Exception as exc:  # a missing optional package, an exporter failure
        row["result"] = f"skipped (build failed: {_short(type(exc).__name__ + ': ' + str(exc), 80)})"
        return row
    row.update(opset=opset_of(model), nodes=len(model.graph.node), params=count_params(model))
    try:
        source, state = generate_torch(model)
        module = build_module(source, state, name=case.name)
        worst_abs = worst_rel = 0.0
        ok = True
        notes = []
        for v in ((0, 1) if case.dynamic else (0,)):
            feeds = case.feeds(v)
            rep = nnport.verify(model, module, inputs=feeds, rtol=case.rtol, atol=case.atol)
            ok = ok and rep.ok
            for o in rep.outputs:
                worst_abs = max(worst_abs, o.max_abs_err)
                worst_rel = max(worst_rel, o.max_rel_err)
                if not o.ok:
                    notes.append(f"{o.name}: {o.note or 'mismatch'}")
        row.update(abs=worst_abs, rel=worst_rel)
        shapes = "2 shapes" if case.dynamic else "1 shape"
        row["result"] = f"ok ({shapes})" if ok else "MISMATCH: " + _short("; ".join(notes), 80)
    except Exception as exc:
        row["result"] = "FAIL: " + _short(f"{type(exc).__name__}: {exc}")
    row["seconds"] = time.perf_counter() - t0
    return row


def fmt_params(n) -> str:
    if n == "":
        return ""
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def fmt_err(x) -> str:
    return "" if x is None else f"{x:.2e}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the heavier models")
    ap.add_argument("-k", default="", help="only models whose name contains this")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a model fails")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)
    from tests.models.builders import all_cases

    rows = []
    for case in all_cases():
        if args.quick and case.slow or args.k not in case.name:
            continue
        row = run_case(case)
        rows.append(row)
        print(f"{case.name}: {row['result']} ({row['seconds']:.1f}s)", file=sys.stderr, flush=True)
    print("| model | source / exporter | opset | nodes | params | max abs err | max rel err | result |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['source']} | {r['opset']} | {r['nodes']} | "
              f"{fmt_params(r['params'])} | {fmt_err(r['abs'])} | {fmt_err(r['rel'])} | {r['result']} |")
    n_ok = sum(r["result"].startswith("ok") for r in rows)
    print(f"\n{n_ok}/{len(rows)} models convert and match onnxruntime "
          "(fp32 tolerance: max|a-b| <= 1e-6 + 1e-4 * max|ref|).")
    return 1 if args.strict and n_ok != len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
