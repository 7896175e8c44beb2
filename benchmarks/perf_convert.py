"""Conversion time and peak memory: nnport vs onnx2torch (when importable), one run each, side
by side, on the BERT-large-sized encoder from perf_models.py (24 layers, hidden 1024, 1.34 GB).

    python benchmarks/perf_convert.py [--model PATH.onnx] [--verify] [--onnx2torch-python PY]

Each conversion runs in a fresh child process; its peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` measured in a wrapper process that runs only
that child.  Times are wall clock of the child, imports included.

onnx2torch cannot convert the default encoder (its attention-mask arithmetic uses
GreaterOrEqual, which onnx2torch lacks), so the side-by-side rows use the same encoder exported
with input_ids as its only input (``perf_models.bert_large_ids``, same weights and size).
onnx2torch runs under ``--onnx2torch-python`` (default: this interpreter, when it can import
onnx2torch), nnport under this interpreter.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_models  # noqa: E402

_WRAP = ("import json, resource, subprocess, sys, time;"
         "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
         "dt = time.perf_counter() - t;"
         "print(json.dumps({'rc': r.returncode, 'err': r.stderr[-400:], 'wall_s': dt,"
         "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))")

_ONNX2TORCH = ("import sys, onnx, torch; from onnx2torch import convert;"
               "m = convert(onnx.load(sys.argv[1])); torch.save(m.state_dict(), sys.argv[2])")


def measure(cmd: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True)
    return json.loads(out.stdout)


def weight_bytes(path: Path) -> int:
    from nnport.io import load_model

    model = load_model(path, lazy=True)
    return sum(v.const_value.nbytes for v in model.graph.initializers.values()
               if v.const_value is not None)


def _o2t_python(arg: str | None) -> str | None:
    py = arg or sys.executable
    probe = subprocess.run([py, "-c", "import onnx2torch"], capture_output=True)
    return py if probe.returncode == 0 else None


def _print(title: str, wb: int, rows: list) -> None:
    print(title)
    print(f"{'tool':<28} {'wall s':>8} {'peak RSS GB':>12} {'RSS/weights':>12}")
    for name, r in rows:
        if r is None:
            print(f"{name:<28} {'not installed':>8}")
        elif r["rc"] != 0:
            print(f"{name:<28} failed: {r['err']}")
        else:
            print(f"{name:<28} {r['wall_s']:>8.2f} {r['rss'] / 1e9:>12.2f} "
                  f"{r['rss'] / wb:>12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="ONNX file (default: BERT-large, cached)")
    ap.add_argument("--verify", action="store_true", help="also time convert with verification")
    ap.add_argument("--onnx2torch-python", default=None,
                    help="interpreter that can import onnx2torch (e.g. the anchors venv)")
    ap.add_argument("--no-onnx2torch", action="store_true", help="skip the side-by-side rows")
    args = ap.parse_args()
    src = Path(args.model) if args.model else perf_models.bert_large()
    o2t_py = None if args.no_onnx2torch else _o2t_python(args.onnx2torch_python)
    wb = weight_bytes(src)
    tables = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("NNPORT_BENCH_OUT")) as d:
        out = Path(d) / "model.py"

        def nnport_rows(model: Path, verify: bool) -> list:
            cli = [sys.executable, "-m", "nnport.cli", "convert", str(model), str(out)]
            rows = [("nnport convert --no-verify", measure(cli + ["--no-verify"]))]
            if verify:
                rows.append(("nnport convert (verified)", measure(cli)))
                rows.append(("nnport verify", measure([sys.executable, "-m", "nnport.cli",
                                                       "verify", str(model), str(out)])))
            return rows

        tables.append((f"model {src} ({wb / 1e9:.2f} GB of weights), {os.cpu_count()} cores",
                       wb, nnport_rows(src, args.verify)))
        if not args.no_onnx2torch:
            side = src if args.model else perf_models.bert_large_ids()
            swb = weight_bytes(side)
            if o2t_py is None:
                o2t = None
            else:
                o2t = measure([o2t_py, "-c", _ONNX2TORCH, str(side), str(Path(d) / "o2t.pt")])
            rows = nnport_rows(side, False) if side != src else []
            tables.append((f"side by side: {side} ({swb / 1e9:.2f} GB), onnx2torch under "
                           f"{o2t_py or '-'}", swb, rows + [("onnx2torch", o2t)]))
    for title, w, rows in tables:
        _print(title, w, rows)


if __name__ == "__main__":
    main()
