"""Conversion time and peak memory: nnport vs onnx2torch (when importable), one run each, side
by side, on the BERT-large-sized encoder from perf_models.py (24 layers, hidden 1024, 1.34 GB).

    python benchmarks/perf_convert.py [--model PATH.onnx] [--verify]

Each conversion runs in a fresh child process; its peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` measured in a wrapper process that runs only
that child.  Times are wall clock of the child, imports included.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="ONNX file (default: BERT-large, cached)")
    ap.add_argument("--verify", action="store_true", help="also time convert with verification")
    args = ap.parse_args()
    src = Path(args.model) if args.model else perf_models.bert_large()
    wb = weight_bytes(src)
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("NNPORT_BENCH_OUT")) as d:
        out = Path(d) / "model.py"
        cli = [sys.executable, "-m", "nnport.cli", "convert", str(src), str(out)]
        r = measure(cli + ["--no-verify"])
        rows.append(("nnport convert --no-verify", r))
        if args.verify:
            rows.append(("nnport convert (verified)", measure(cli)))
            rows.append(("nnport verify", measure([sys.executable, "-m", "nnport.cli", "verify",
                                                   str(src), str(out)])))
        if importlib.util.find_spec("onnx2torch") is not None:
            rows.append(("onnx2torch", measure([sys.executable, "-c", _ONNX2TORCH, str(src),
                                                str(Path(d) / "o2t.pt")])))
        else:
            rows.append(("onnx2torch", None))
    print(f"model {src} ({wb / 1e9:.2f} GB of weights), {os.cpu_count()} cores")
    print(f"{'tool':<28} {'wall s':>8} {'peak RSS GB':>12} {'RSS/weights':>12}")
    for name, r in rows:
        if r is None:
            print(f"{name:<28} {'not installed':>8}")
        elif r["rc"] != 0:
            print(f"{name:<28} failed: {r['err']}")
        else:
            print(f"{name:<28} {r['wall_s']:>8.2f} {r['rss'] / 1e9:>12.2f} "
                  f"{r['rss'] / wb:>12.2f}")


if __name__ == "__main__":
    main()
