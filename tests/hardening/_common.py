"""Helpers for the hardening tests: the fuzz engine (benchmarks/fuzz.py) and a bounded child
process runner."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_fuzz():
    """benchmarks/fuzz.py as a module (benchmarks/ is not a package)."""
    name = "nnport_bench_fuzz"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_CHILD = r'''
import json, resource, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
import nnport
args = json.loads(sys.argv[1])
try:
    fn = args["fn"]
    if fn == "inspect":
        nnport.inspect(args["src"])
    elif fn == "generate":
        from nnport.convert import generate_torch
        generate_torch(args["src"])
    else:
        nnport.convert(args["src"], args["dst"], verify=fn == "verify")
    print(json.dumps({{"outcome": "ok"}}))
except nnport.NnportError as e:
    print(json.dumps({{"outcome": "nnport", "type": type(e).__name__, "msg": str(e)}}))
except BaseException as e:
    print(json.dumps({{"outcome": "other", "type": type(e).__name__, "msg": str(e)[:500]}}))
'''


def run_bounded(fn: str, src, dst=None, *, mem_gb: float = 4.0, timeout: int = 240) -> dict:
    """Run nnport.<fn> in a child with an address-space limit, so a model that asks for
    terabytes cannot take the machine down; returns {"outcome", "type", "msg"}."""
    code = _CHILD.format(mem=int(mem_gb * (1 << 30)))
    args = json.dumps({"fn": fn, "src": str(src), "dst": str(dst) if dst else None})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"outcome": "crash", "type": f"exit {proc.returncode}", "msg": proc.stderr[-2000:]}
    return json.loads(lines[-1])
