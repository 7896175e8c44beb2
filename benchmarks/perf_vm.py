"""Address space (VmPeak) and peak RSS (VmHWM) of every nnport path, next to the model's size.

    python benchmarks/perf_vm.py [--model PATH.onnx ...] [--blocks 1000] [--width 256]
                                 [--paths convert-py,convert-param,...] [--bert-small]

Each command runs in a fresh child process (``nnport.cli`` in-process, then the child reads its
own ``/proc/self/status``).  The baseline is a child that only imports torch.  Target (issue
20): VmPeak <= baseline + 2 x file size; the ``(VmPeak-base)/file`` column is that ratio.  It
also holds costs that do not grow with the model (onnxruntime's and ncnn's libraries, thread
stacks and malloc arenas: 0.2-0.6 GB), so ``growth/file`` gives the part that does: the same
path on a 4-block model of the same width is subtracted, and the difference divided by the
difference in file size (address space per byte of model).  glibc gives a thread that
allocates while another does its own arena (64 MB of address space each, up to 8 per core),
as timing decides: run with ``MALLOC_ARENA_MAX=2`` in the environment (the children inherit
it) for ``growth/file`` figures that repeat.  ``verify onnx py --report`` compares every
intermediate tensor (locate's full scan).

Default model: a generated chain of ``--blocks`` MatMul -> Mul(per-channel) -> Relu blocks of
``--width`` (2 x blocks weights in one .onnx file; 1000 x 256 gives 262 MB), the shape of model
that made one mapping per tensor cost tensors x file size (300 weights of a 237 MB detector:
19.6 GB).  ``--bert-small`` adds perf_models' 2-layer BERT, ``--model`` any file.
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

_CHILD = r"""
import json, sys
def status():
    d = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmPeak", "VmHWM"):
            d[k] = int(v.split()[0]) * 1024
    return d
rc = 0
if sys.argv[1] == "baseline":
    import torch
elif sys.argv[1] == "to_torch":
    import nnport
    m = nnport.to_torch(sys.argv[2])
else:
    sys.argv = ["nnport"] + sys.argv[1:]
    from nnport.cli import main
    try:
        main()
    except SystemExit as e:
        rc = e.code or 0
d = status()
d["rc"] = rc
sys.stdout.flush()
print("@@" + json.dumps(d))
"""

PATHS = {
    "convert-py --no-verify": lambda m, o: ["convert", m, f"{o}/model.py", "--no-verify"],
    "convert-py": lambda m, o: ["convert", m, f"{o}/model.py"],
    "convert-param --no-verify": lambda m, o: ["convert", m, f"{o}/model.param", "--no-verify"],
    "convert-param": lambda m, o: ["convert", m, f"{o}/model.param"],
    "convert-pt --no-verify": lambda m, o: ["convert", m, f"{o}/model.pt", "--no-verify"],
    "convert-pt": lambda m, o: ["convert", m, f"{o}/model.pt"],
    "to_torch": lambda m, o: ["to_torch", m],
    "verify onnx py --locate": lambda m, o: ["verify", m, f"{o}/model.py", "--locate"],
    "verify onnx py --report": lambda m, o: ["verify", m, f"{o}/model.py", "--locate",
                                             "--report", f"{o}/report.html"],
    "verify onnx param": lambda m, o: ["verify", m, f"{o}/model.param"],
    "simplify": lambda m, o: ["simplify", m, f"{o}/s.onnx"],
    "edit --rename": lambda m, o: ["edit", m, f"{o}/e.onnx", "--rename", "{inp}=renamed_input"],
    "inspect": lambda m, o: ["inspect", m],
}


def run_child(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True,
                       env=env)
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("@@"):
            return json.loads(line[2:])
    return {"rc": p.returncode, "err": p.stderr.strip().splitlines()[-1:] or ["?"]}


def blocks_model(path: Path, n: int, d: int) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(n):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((d, d)) / d ** 0.5).astype(np.float32), f"w{i}"))
        inits.append(numpy_helper.from_array(
            (1 + 0.1 * rng.standard_normal(d)).astype(np.float32), f"s{i}"))
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Mul", [f"m{i}", f"s{i}"], [f"p{i}"]),
                  helper.make_node("Relu", [f"p{i}"], [f"r{i}"])]
        x = f"r{i}"
    g = helper.make_graph(nodes, "blocks", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, d])], [helper.make_tensor_value_info(
            x, TensorProto.FLOAT, [1, d])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def first_input(path: str) -> str:
    import onnx

    m = onnx.load(path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    return next(i.name for i in m.graph.input if i.name not in inits)


def file_bytes(path: str) -> int:
    """The .onnx file plus the external-data files beside it that it names."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    m = onnx.load(path, load_external_data=False)
    locs = {e.value for t in _get_all_tensors(m) for e in t.external_data if e.key == "location"}
    return os.path.getsize(path) + sum(os.path.getsize(Path(path).parent / loc) for loc in locs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[], help="an ONNX file (repeatable)")
    ap.add_argument("--blocks", type=int, default=1000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--no-blocks", action="store_true", help="skip the generated model")
    ap.add_argument("--bert-small", action="store_true")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated rows")
    args = ap.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(dir=os.environ.get("NNPORT_BENCH_OUT")) as d:
        models = list(args.model)
        if not args.no_blocks:
            models.append(str(blocks_model(Path(d) / f"blocks{args.blocks}x{args.width}.onnx",
                                           args.blocks, args.width)))
        if args.bert_small:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import perf_models

            models.append(str(perf_models.bert_small()))
        base = run_child(["baseline"])
        print(f"baseline (import torch): VmPeak {base['VmPeak'] / 1e9:.2f} GB, "
              f"RSS {base['VmHWM'] / 1e9:.2f} GB; {os.cpu_count()} cores")
        small = str(blocks_model(Path(d) / "blocks4.onnx", 4, args.width))
        small_size = file_bytes(small)
        out = Path(d) / "out"

        def measure(m: str, name: str) -> dict:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if name.startswith("verify"):  # needs the converted files
                tgt = "model.param" if "param" in name else "model.py"
                run_child(["convert", m, str(out / tgt), "--no-verify", "--quiet"])
            return run_child([a.replace("{inp}", first_input(m)) for a in PATHS[name](m, str(out))])

        fixed = {name: measure(small, name) for name in paths}
        for m in models:
            size = file_bytes(m)
            print(f"\nmodel {m}: {size / 1e6:.1f} MB")
            print(f"{'path':<26} {'VmPeak GB':>9} {'peak RSS GB':>11} {'(VmPeak-base)/file':>18} "
                  f"{'growth/file':>11}")
            for name in paths:
                r = measure(m, name)
                if "VmPeak" not in r or r.get("rc"):
                    print(f"{name:<26} failed: rc {r.get('rc')} {r.get('err', '')}")
                    continue
                ratio = (r["VmPeak"] - base["VmPeak"]) / size
                f = fixed[name]
                growth = (f"{(r['VmPeak'] - f['VmPeak']) / (size - small_size):>11.2f}"
                          if "VmPeak" in f and not f.get("rc") and size > small_size else
                          f"{'-':>11}")
                print(f"{name:<26} {r['VmPeak'] / 1e9:>9.2f} {r['VmHWM'] / 1e9:>11.2f} "
                      f"{ratio:>18.2f} {growth}")

if __name__ == "__main__":
    main()
