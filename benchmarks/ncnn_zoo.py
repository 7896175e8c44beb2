"""ONNX -> ncnn over a folder of real models (the anchors zoo, ../shared/ANCHORS.md): does each
convert, does ncnn match onnxruntime to a relative 1e-2, how long did conversion take, and how
fast does ncnn run the result (2 threads; both tools' nets are timed in one process, runs
interleaved, median, so machine load hits both alike).  With pnnx importable (the anchors env), pnnx converts
the same ONNX files and is measured the same way, side by side in one run.

    python benchmarks/ncnn_zoo.py ZOO_DIR [--only NAME ...] [--runs 10] [--no-pnnx] [--json F]

Each conversion runs in a fresh child process (a crash or hang in one model cannot stop the
table); conversion time is the child's wall clock for the conversion call, imports excluded.
The match criterion for both tools: max|ncnn - ort| <= 1e-2 * max|ort| on every output, same
seeded input.

Dead branches: a model made with random weights by timm has the last norm of each residual
block initialised to zero, and the exporter folds it into the convolution before it, so a whole
branch (ResNeSt's split attention, ResNet's bottlenecks) adds nothing to the output, and a wrong
conversion of it still matches.  Each model is therefore converted from a copy whose all-zero
float tensors (at least 2 elements) are seeded random values (``live_weights``); both tools and
onnxruntime run that copy.  ``--as-exported`` converts the files as they are.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r'''
import json, sys, time, os
import numpy as np
tool, src, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
res = {"ok": False}
def ort_run(path, feed):
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s.run(None, feed), [i for i in s.get_inputs()]
try:
    import onnx
    m = onnx.load(src, load_external_data=False)
    shape = [d.dim_value or 1 for d in m.graph.input[0].type.tensor_type.shape.dim]
    iname = m.graph.input[0].name
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if tool == "nnport":
        from nnport.ncnn_emit import convert_to_ncnn
        t = time.perf_counter()
        convert_to_ncnn(src, out, verify=False, input_shapes={iname: tuple(shape)})
        res["convert_s"] = time.perf_counter() - t
        param, feed_name = out, iname
    else:
        import pnnx
        t = time.perf_counter()
        pnnx.convert(src, [__import__("torch").from_numpy(x)])
        res["convert_s"] = time.perf_counter() - t
        param = str(Path(src).with_suffix(".ncnn.param")) if False else src[:-5] + ".ncnn.param"
        feed_name = "in0"
    import ncnn
    net = ncnn.Net(); net.opt.num_threads = 2; net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.load_param(param); net.load_model(param[:-6] + ".bin")
    if tool == "nnport":
        from nnport.ncnn_emit.runner import read_outputs
        out_blob = read_outputs(param)[0][0]
    else:
        out_blob = "out0"
    def run():
        ex = net.create_extractor(); ex.set_light_mode(True)
        ex.input(feed_name, ncnn.Mat(np.ascontiguousarray(x[0])).clone())
        ret, mat = ex.extract(out_blob)
        assert ret == 0, f"extract {out_blob} failed ({ret})"
        return np.array(mat).copy()
    y = run()
    ref = ort_run(src, {iname: x})[0][0]
    y = y.reshape(ref.shape) if y.size == ref.size else y
    if y.shape != ref.shape:
        raise RuntimeError(f"shape {y.shape} vs onnxruntime {ref.shape}")
    err = float(np.abs(y - ref).max()); scale = float(np.abs(ref).max())
    res["rel_err"] = err / max(scale, 1e-12)
    res["match"] = bool(err <= 1e-2 * scale)
    res["param"], res["blobs"] = param, [feed_name, out_blob]
    res["ok"] = True
except BaseException as e:
    res["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
print("RESULT " + json.dumps(res))
'''


_LATENCY = r'''
import json, sys, time, statistics
import numpy as np, ncnn
spec = json.loads(sys.argv[1]); runs = int(sys.argv[2])
nets = []
for param, (inp, out), shape in spec:
    net = ncnn.Net(); net.opt.num_threads = 2; net.opt.use_vulkan_compute = False
    net.load_param(param); net.load_model(param[:-6] + ".bin")
    x = np.random.default_rng(0).standard_normal(shape[1:]).astype(np.float32)
    nets.append((net, inp, out, x))
def run(net, inp, out, x):
    ex = net.create_extractor(); ex.set_light_mode(True)
    ex.input(inp, ncnn.Mat(x).clone()); ex.extract(out)
times = [[] for _ in nets]
for _ in range(2):
    for n in nets: run(*n)
for _ in range(runs):  # interleaved: both nets see the same machine load
    for i, n in enumerate(nets):
        t = time.perf_counter(); run(*n); times[i].append(time.perf_counter() - t)
print("RESULT " + json.dumps([statistics.median(t) * 1e3 for t in times]))
'''


def latency(params: list, shape, runs: int, python: str) -> list:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    r = subprocess.run([python, "-c", _LATENCY, json.dumps([[p, b, shape] for p, b in params]),
                        str(runs)], capture_output=True, text=True, env=env, timeout=1200)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return [None] * len(params)


def live_weights(src: Path, dst: Path, seed: int = 0) -> int:
    """Write ``src`` to ``dst`` with every all-zero float initializer of at least 2 elements
    replaced by seeded normal values (std 1/sqrt(fan-in) for weights, 0.1 for vectors); return
    how many were replaced."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    n = 0
    for t in m.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(t)
        if a.size < 2 or a.any():
            continue
        std = 1.0 / np.sqrt(np.prod(a.shape[1:])) if a.ndim >= 2 else 0.1
        t.CopyFrom(numpy_helper.from_array((rng.standard_normal(a.shape) * std)
                                           .astype(np.float32), t.name))
        n += 1
    onnx.save(m, str(dst))
    return n


def child(tool: str, src: Path, out: Path, runs: int, python: str, timeout: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    try:
        r = subprocess.run([python, "-c", _CHILD, tool, str(src), str(out), str(runs)],
                           capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=out.parent)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout}s"}
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"ok": False, "error": f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("zoo", type=Path)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-pnnx", action="store_true")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--as-exported", action="store_true",
                    help="convert the files as they are, dead (all-zero) branches included")
    args = ap.parse_args()
    import importlib.util

    with_pnnx = not args.no_pnnx and importlib.util.find_spec("pnnx") is not None
    files = sorted(p for p in args.zoo.glob("timm_*.onnx"))
    if args.only:
        files = [p for p in files if any(o in p.stem for o in args.only)]
    rows = {}
    hdr = f"{'model':32} {'nnport':>7} {'rel err':>9} {'conv s':>7} {'ms':>8}"
    if with_pnnx:
        hdr += f" | {'pnnx':>7} {'rel err':>9} {'conv s':>7} {'ms':>8} {'ratio':>6}"
    print(hdr, flush=True)
    with tempfile.TemporaryDirectory() as d:  # noqa: SIM117
        for src in files:
            name = src.stem[len("timm_"):]
            work = Path(d) / name
            work.mkdir()
            local = work / src.name
            if args.as_exported:
                os.symlink(src.resolve(), local)
                revived = 0
            else:
                revived = live_weights(src, local)
            ours = child("nnport", local, work / "model.param", args.runs, sys.executable,
                         args.timeout)
            row = {"nnport": ours, "revived": revived}
            theirs = None
            if with_pnnx:
                theirs = child("pnnx", local, work / "unused.param", args.runs, sys.executable,
                               args.timeout)
                row["pnnx"] = theirs
            ok = [r for r in (ours, theirs) if r is not None and r.get("ok")]
            if ok and args.runs:
                import onnx

                m = onnx.load(str(local), load_external_data=False)
                shape = [d.dim_value or 1 for d in m.graph.input[0].type.tensor_type.shape.dim]
                for r, ms in zip(ok, latency([(r["param"], r["blobs"]) for r in ok], shape,
                                             args.runs, sys.executable)):
                    r["latency_ms"] = ms
            line = f"{name:32} {_fmt(ours)}"
            if with_pnnx:
                ratio = (ours["latency_ms"] / theirs["latency_ms"]
                         if ours.get("latency_ms") and theirs.get("latency_ms") else None)
                line += f" | {_fmt(theirs)} {ratio if ratio is None else f'{ratio:6.2f}'}"
            print(line, flush=True)
            for tool, r in row.items():
                if isinstance(r, dict) and not r.get("ok"):
                    print(f"    {tool}: {r.get('error')}", flush=True)
            rows[name] = row
    revived = [f"{n} {r['revived']}" for n, r in rows.items() if r["revived"]]
    if revived:
        print("all-zero tensors given random values (model count): " + ", ".join(revived))
    for tool in ["nnport"] + (["pnnx"] if with_pnnx else []):
        n = sum(1 for r in rows.values() if r[tool].get("ok") and r[tool].get("match"))
        print(f"{tool}: {n} of {len(rows)} convert and match onnxruntime (rel 1e-2)")
    if with_pnnx:
        print(latency_summary(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def latency_summary(rows: dict, worst_bound: float = 1.05) -> str:
    """nnport's ncnn latency over pnnx's: geometric mean over the models both convert and
    match, and the models above ``worst_bound``."""
    import math

    ratios = {name: r["nnport"]["latency_ms"] / r["pnnx"]["latency_ms"]
              for name, r in rows.items()
              if all(r[t].get("ok") and r[t].get("match") and r[t].get("latency_ms")
                     for t in ("nnport", "pnnx"))}
    if not ratios:
        return "latency: no model that both tools convert and match"
    geo = math.exp(sum(math.log(v) for v in ratios.values()) / len(ratios))
    above = ", ".join(f"{n} {v:.2f}" for n, v in sorted(ratios.items(), key=lambda kv: -kv[1])
                      if v > worst_bound)
    return (f"latency nnport / pnnx over the {len(ratios)} models both convert and match: "
            f"geometric mean {geo:.3f}; above {worst_bound}: {above or 'none'}")


def _fmt(r: dict) -> str:
    if not r.get("ok"):
        return f"{'FAIL':>7} {'':>9} {r.get('convert_s', 0):7.2f} {'':>8}"
    ms = r.get("latency_ms")
    return (f"{'match' if r['match'] else 'WRONG':>7} {r['rel_err']:9.2e} {r['convert_s']:7.2f} "
            f"{'-' if ms is None else f'{ms:.2f}':>8}")


if __name__ == "__main__":
    main()
