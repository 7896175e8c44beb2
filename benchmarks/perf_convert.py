"""Conversion time and peak memory: nnport vs onnx2torch (when importable), one run each, side
by side, on the BERT-large-sized encoder from perf_models.py (24 layers, hidden 1024, 1.34 GB).

    python benchmarks/perf_convert.py [--model PATH.onnx] [--verify] [--onnx2torch-python PY]
                                      [--repeat 3]

Each conversion runs in a fresh child process writing into a fresh, empty folder (so no run
pays for deleting an earlier run's output); its peak RSS comes from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` measured in a wrapper process that runs only
that child.  Times are wall clock of the child, imports included.  With ``--repeat N`` every
row runs N times, the rows interleaved (nnport, onnx2torch, nnport, ...), and the table shows
the median time and the largest peak RSS; the ratio column divides by onnx2torch's median.

onnx2torch cannot convert the default encoder (its attention-mask arithmetic uses
GreaterOrEqual, which onnx2torch lacks), so the side-by-side rows use the same encoder exported
with input_ids as its only input (``perf_models.bert_large_ids``, same weights and size).
onnx2torch runs under ``--onnx2torch-python`` (default: this interpreter, when it can import
onnx2torch), nnport under this interpreter.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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


def _combine(runs: list[dict]) -> dict:
    """Median wall time, largest peak RSS; the first failure wins."""
    for r in runs:
        if r["rc"] != 0:
            return r
    walls = sorted(r["wall_s"] for r in runs)
    return {"rc": 0, "err": "", "wall_s": walls[len(walls) // 2],
            "rss": max(r["rss"] for r in runs), "n": len(runs)}


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
    ref = dict(rows).get("onnx2torch")
    ref = ref["wall_s"] if ref and ref["rc"] == 0 else None
    print(f"{'tool':<28} {'wall s':>8} {'/onnx2torch':>12} {'peak RSS GB':>12} "
          f"{'RSS/weights':>12}")
    for name, r in rows:
        if r is None:
            print(f"{name:<28} {'not installed':>8}")
        elif r["rc"] != 0:
            print(f"{name:<28} failed: {r['err']}")
        else:
            ratio = f"{r['wall_s'] / ref:.2f}" if ref else "-"
            print(f"{name:<28} {r['wall_s']:>8.2f} {ratio:>12} {r['rss'] / 1e9:>12.2f} "
                  f"{r['rss'] / wb:>12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="ONNX file (default: BERT-large, cached)")
    ap.add_argument("--verify", action="store_true", help="also time convert with verification")
    ap.add_argument("--onnx2torch-python", default=None,
                    help="interpreter that can import onnx2torch (e.g. the anchors venv)")
    ap.add_argument("--no-onnx2torch", action="store_true", help="skip the side-by-side rows")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per row, interleaved; the table shows medians")
    args = ap.parse_args()
    src = Path(args.model) if args.model else perf_models.bert_large()
    o2t_py = None if args.no_onnx2torch else _o2t_python(args.onnx2torch_python)
    wb = weight_bytes(src)
    tables = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("NNPORT_BENCH_OUT")) as d:
        fresh = iter(range(1 << 30))

        def run(cmd_of) -> dict:
            """One measured run into a new empty folder, removed afterwards."""
            out = Path(d) / f"run{next(fresh)}"
            out.mkdir()
            try:
                return measure(cmd_of(out))
            finally:
                shutil.rmtree(out, ignore_errors=True)

        def nnport_cmds(model: Path, verify: bool) -> list:
            def cli(*extra):
                return lambda out: [sys.executable, "-m", "nnport.cli", "convert", str(model),
                                    str(out / "model.py"), *extra]

            def verify_cmd(out):  # needs the converted files: convert, then measure verify
                subprocess.run(cli("--no-verify", "--quiet")(out), check=True,
                               capture_output=True)
                return [sys.executable, "-m", "nnport.cli", "verify", str(model),
                        str(out / "model.py")]

            rows = [("nnport convert --no-verify", cli("--no-verify"))]
            if verify:
                rows += [("nnport convert (verified)", cli()), ("nnport verify", verify_cmd)]
            return rows

        def measure_rows(named: list) -> list:
            runs: dict = {name: [] for name, _ in named}
            for _ in range(max(1, args.repeat)):
                for name, cmd_of in named:
                    runs[name].append(run(cmd_of))
            return [(name, _combine(runs[name])) for name, _ in named]

        def o2t_cmd(model: Path):
            return lambda out: [o2t_py, "-c", _ONNX2TORCH, str(model), str(out / "o2t.pt")]

        # onnx2torch cannot convert the default encoder: beside it, the input_ids-only export
        side = None if args.no_onnx2torch else (src if args.model else perf_models.bert_large_ids())
        named = nnport_cmds(src, args.verify)
        if side == src and o2t_py is not None:
            named.append(("onnx2torch", o2t_cmd(src)))
        rows = measure_rows(named)
        if side == src and o2t_py is None:
            rows.append(("onnx2torch", None))
        tables.append((f"model {src} ({wb / 1e9:.2f} GB of weights), {os.cpu_count()} cores, "
                       f"median of {max(1, args.repeat)} interleaved runs", wb, rows))
        if side is not None and side != src:
            swb = weight_bytes(side)
            named = nnport_cmds(side, False)
            if o2t_py is not None:
                named.append(("onnx2torch", o2t_cmd(side)))
            rows = measure_rows(named)
            if o2t_py is None:
                rows.append(("onnx2torch", None))
            tables.append((f"side by side: {side} ({swb / 1e9:.2f} GB), onnx2torch under "
                           f"{o2t_py or '-'}, median of {max(1, args.repeat)} interleaved runs",
                           swb, rows))
    for title, w, rows in tables:
        _print(title, w, rows)


if __name__ == "__main__":
    main()
