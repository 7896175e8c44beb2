"""Conversion time and ncnn latency of nnport's .param (and pnnx's, when pnnx is importable).

    .venv/bin/python benchmarks/ncnn_bench.py [--runs 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.ncnn_emit.models import CNN, Encoder, Recurrent, export  # noqa: E402


def latency(param: Path, feeds: dict, runs: int) -> float:
    from nnport.ncnn_emit.runner import NcnnRunner

    r = NcnnRunner(param)
    r.run(feeds)
    t0 = time.perf_counter()
    for _ in range(runs):
        r.run(feeds)
    return (time.perf_counter() - t0) / runs * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    from nnport.convert import convert

    try:
        import pnnx  # noqa: F401
    except ImportError:
        pnnx = None
        print("pnnx not importable: comparing against pnnx skipped")
    torch.manual_seed(0)
    cases = [("cnn", CNN(), (1, 3, 64, 64)), ("encoder", Encoder(), (1, 16, 32)),
             ("lstm_gru", Recurrent(), (1, 10, 8))]
    print(f"{'model':10} {'convert s':>10} {'nnport ms':>10} {'pnnx ms':>10}")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name, module, shape in cases:
            x = torch.randn(*shape)
            src = export(module, (x,), d / f"{name}.onnx")
            t0 = time.perf_counter()
            convert(src, d / f"{name}.param", verify=False)
            conv_s = time.perf_counter() - t0
            feeds = {"input": x.numpy().astype(np.float32)}
            ours = latency(d / f"{name}.param", feeds, args.runs)
            theirs = "-"
            if pnnx is not None:
                try:
                    pt = d / f"{name}.pt"
                    torch.jit.trace(module.eval(), (x,)).save(str(pt))
                    pnnx.convert(str(pt), [x])
                    theirs = f"{latency(d / f'{name}.ncnn.param', {'in0': feeds['input']}, args.runs):.3f}"
                except Exception as exc:  # pnnx's own naming/behaviour: report, do not fail
                    theirs = f"failed ({type(exc).__name__})"
            print(f"{name:10} {conv_s:10.2f} {ours:10.3f} {theirs:>10}")


if __name__ == "__main__":
    main()
