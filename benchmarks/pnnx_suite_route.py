"""pnnx's ncnn test suite through nnport's own PyTorch route, as a user runs it.

The shared runner (``../shared/peer-suites/run_pnnx_suite.py``) exports each case with
``torch.onnx.export`` itself and feeds ncnn as its own code knows.  This script instead hands
each test's module and inputs to nnport as a user would (``nnport.convert(module,
"out/model.param", inputs=...)``, the call behind ``nnport convert net.py:factory
out/model.param``): nnport's exporter (with its rewrites of calls torch cannot export), its
ncnn emitter, and its runner (``NcnnRunner``, which feeds each input in the layout the .param
records).  Each case's outputs are compared with the module's own outputs by the shared
runner's rule: max|ncnn - torch| <= 1e-2 * max(1, max|torch|) on every output.

    python benchmarks/pnnx_suite_route.py SUITE_DIR [--only NAME ...] [--jobs 2]
        [--timeout 600] [--json F]

SUITE_DIR holds the suite's ``test_*.py`` files (``../shared/peer-suites/pnnx-ncnn``).  Each
case runs in its own child process with a timeout.  Needs torch, onnxruntime and ncnn (the
project's test extras).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_CHILD = r'''
import inspect, json, sys, types, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
path, out = sys.argv[1], sys.argv[2]
res = {"ok": False}
def done():
    print("RESULT " + json.dumps(res)); sys.exit(0)
name = path.rsplit("/", 1)[-1][:-3]
sys.path.insert(0, path.rsplit("/", 1)[0])
mod = types.ModuleType(name); mod.__file__ = path
try:
    exec(compile(open(path).read(), path, "exec"), mod.__dict__)
except Exception as e:
    res["skip"] = f"import failed: {type(e).__name__}: {str(e)[:150]}"; done()
cap = {}
class Captured(Exception):
    pass
real = torch.jit.trace
def fake(net, example_inputs=None, *a, **k):
    cap["net"], cap["inputs"] = net, example_inputs
    raise Captured()
torch.jit.trace = fake
try:
    mod.test()
    res["skip"] = "test() did not trace"
except Captured:
    pass
except Exception as e:
    res["skip"] = f"test() raised: {type(e).__name__}: {str(e)[:150]}"
finally:
    torch.jit.trace = real
if "skip" in res:
    done()
net, inputs = cap["net"], cap["inputs"]
inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
names = [p for p in inspect.signature(net.forward).parameters][:len(inputs)]
def flat(o):
    if isinstance(o, torch.Tensor):
        return [o]
    if isinstance(o, (list, tuple)):
        return [t for x in o for t in flat(x)]
    return []
with torch.no_grad():
    ref = [t.detach().float().numpy() for t in flat(net(*inputs))]
import nnport
from nnport.errors import NnportError
from nnport.ncnn_emit.runner import NcnnRunner
feeds = dict(zip(names, inputs))
try:
    r = nnport.convert(net, out, inputs=feeds, verify=False)
    if not r.outputs:
        res["why"] = "convert: " + "; ".join(r.notes)[:300]; done()
    got = NcnnRunner(out).run({k: v.numpy() for k, v in feeds.items()})
except NnportError as e:
    res["why"] = f"nnport: error: {' '.join(str(e).split())[:300]}"; done()
except Exception as e:
    res["why"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"; done()
if len(got) != len(ref):
    res["why"] = f"{len(got)} outputs, torch has {len(ref)}"; done()
worst = 0.0
for g, r in zip(got, ref):
    g = np.asarray(g, np.float64).reshape(-1); r = np.asarray(r, np.float64).reshape(-1)
    if g.size != r.size:
        res["why"] = f"numel {g.size} != torch's {r.size}"; done()
    if r.size == 0:
        continue
    if not np.array_equal(np.isfinite(g), np.isfinite(r)):
        res["why"] = "non-finite values where torch has none (or the reverse)"; done()
    m = np.isfinite(r)
    if m.any():
        worst = max(worst, float(np.abs(g[m] - r[m]).max()) / max(1.0, float(np.abs(r[m]).max())))
res["rel"] = worst
res["ok"] = worst <= 1e-2
if not res["ok"]:
    res["why"] = f"mismatch rel {worst:.3g}"
done()
'''


def run_case(path: Path, timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="nnport-suite-") as d:
        t0 = time.perf_counter()
        try:
            p = subprocess.run([sys.executable, "-c", _CHILD, str(path), f"{d}/model.param"],
                               capture_output=True, text=True, timeout=timeout, cwd=d)
        except subprocess.TimeoutExpired:
            return {"test": path.stem, "ok": False, "why": "timeout"}
        res = None
        for line in p.stdout.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
        if res is None:
            tail = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
            res = {"ok": False, "why": f"crash rc={p.returncode}: {tail[-1][:200] if tail else ''}"}
        res["test"] = path.stem
        res["seconds"] = round(time.perf_counter() - t0, 1)
        return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", type=Path)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    files = sorted(a.suite.glob("test_*.py"))
    if a.only:
        files = [f for f in files if f.stem in a.only or any(o in f.stem for o in a.only)]
    if not files:
        print(f"no test_*.py files in {a.suite}", file=sys.stderr)
        return 2
    t0 = time.time()
    rows = []
    with ThreadPoolExecutor(a.jobs) as pool:
        for k, r in enumerate(pool.map(lambda f: run_case(f, a.timeout), files)):
            rows.append(r)
            state = "skip" if "skip" in r else ("PASS" if r["ok"] else "FAIL")
            print(f"[{k + 1}/{len(files)}] {r['test']}: {state} "
                  f"{r.get('skip') or r.get('why') or ''}"[:200], flush=True)
    ran = [r for r in rows if "skip" not in r]
    passed = sum(r["ok"] for r in ran)
    print(f"\nnnport's own route on {a.suite}: {passed} of {len(ran)} ran cases pass "
          f"({len(rows) - len(ran)} skipped), {time.time() - t0:.0f} s")
    for r in ran:
        if not r["ok"]:
            print(f"  FAIL {r['test']}: {r.get('why', '')[:160]}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
