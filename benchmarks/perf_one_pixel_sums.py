"""nnport.compile with and without its one-pixel convolutions written as sums, in one process.

    python benchmarks/perf_one_pixel_sums.py [--runs 100] [--models mobilenetv3]
    python benchmarks/perf_one_pixel_sums.py --onnx ZOO/timm_efficientnet_b0.onnx ...

`nnport.compile` rewrites a conv2d of one one-pixel image (a squeeze-and-excitation block's two
1×1 convolutions after its pool) as a multiply and a sum (`torch_compile.one_pixel_convs_as_sums`).
This times the module compiled with it, the same module compiled without it, and onnxruntime,
taking turns each round (one untimed call, three timed), and prints the medians. Batch 1,
2 threads. The ONNX files' inputs are random, from their declared shapes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_runtime  # noqa: E402


def _compiled(path: Path, tins: list, sums: bool):
    import nnport
    from nnport import torch_compile

    module = nnport.compile(nnport.to_torch(str(path)))
    keep = torch_compile.one_pixel_convs_as_sums
    if not sums:  # the first call compiles: the pass is looked up then
        torch_compile.one_pixel_convs_as_sums = lambda gm: 0
    try:
        return module, module(*tins)
    finally:
        torch_compile.one_pixel_convs_as_sums = keep


def bench(name: str, path: Path, feeds: dict[str, np.ndarray], runs: int) -> None:
    sess = perf_runtime.ort_session(path)
    tins = [torch.from_numpy(feeds[i.name]) for i in sess.get_inputs()]
    ref = sess.run(None, feeds)[0]
    calls = {"onnxruntime": lambda: sess.run(None, feeds)}
    for label, sums in (("with sums", True), ("without", False)):
        module, out = _compiled(path, tins, sums)
        perf_runtime.check_matches(f"{name}: nnport.compile {label}", out, ref)
        calls[label] = lambda m=module: m(*tins)
    ms = perf_runtime.interleaved_medians(calls, runs)
    print(f"{name:<32} ort {ms['onnxruntime']:7.2f} ms   with sums {ms['with sums']:7.2f} ms "
          f"({ms['with sums'] / ms['onnxruntime']:.2f}×)   without {ms['without']:7.2f} ms "
          f"({ms['without'] / ms['onnxruntime']:.2f}×)   with ÷ without "
          f"{ms['with sums'] / ms['without']:.3f}", flush=True)
    torch._dynamo.reset()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--models", default="mobilenetv3")
    ap.add_argument("--onnx", nargs="*", default=None, help="time these ONNX files instead")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        if args.onnx:
            items = [(Path(p).stem, Path(p), perf_runtime._random_inputs(Path(p), {}))
                     for p in args.onnx]
        else:
            items = [(n, *perf_runtime._builtin(n, Path(d))[:2]) for n in args.models.split(",")]
        print(f"torch {torch.__version__}, 2 threads, batch 1, {args.runs} rounds of 1 untimed "
              f"+ 3 timed calls per runtime, medians")
        for name, path, feeds in items:
            bench(name, path, feeds, args.runs)


if __name__ == "__main__":
    main()
