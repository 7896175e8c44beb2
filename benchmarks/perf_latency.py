"""Latency of nnport-generated PyTorch code vs the module it was exported from.

    python benchmarks/perf_latency.py [--runs 30] [--models vit,resnet50,convnext]

Each model (transformers config, random weights) is exported to ONNX (TorchScript exporter),
converted with ``nnport.to_torch`` and both modules are timed in one process, batch 1,
2 threads, interleaved (original, generated, original, ...), median of N runs.
Prints a table; a ratio <= 1.0 means the generated code is at least as fast.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_models  # noqa: E402


class _Out(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x).last_hidden_state


MODELS = {"vit": perf_models.vit_tiny, "resnet50": perf_models.resnet50,
          "convnext": perf_models.convnext_tiny}


def bench(name: str, runs: int, folder: Path) -> dict:
    import nnport

    orig = _Out(MODELS[name]()).eval()
    x = torch.randn(1, 3, 224, 224)
    path = folder / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(orig, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["pixel_values"], output_names=["out"])
    gen = nnport.to_torch(str(path)).eval()
    with torch.no_grad():
        ref, got = orig(x), gen(x)
    err = (ref - got).abs().max().item()
    times = {"orig": [], "gen": []}
    with torch.inference_mode():
        for _ in range(3):  # warm up both
            orig(x)
            gen(x)
        for _ in range(runs):
            for key, mod in (("orig", orig), ("gen", gen)):
                t = time.perf_counter()
                mod(x)
                times[key].append(time.perf_counter() - t)
    o, g = statistics.median(times["orig"]), statistics.median(times["gen"])
    return {"model": name, "orig_ms": o * 1e3, "gen_ms": g * 1e3, "ratio": g / o,
            "max_abs_err": err}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--models", default="vit,resnet50,convnext")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            rows.append(bench(name, args.runs, Path(d)))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch 1, "
          f"median of {args.runs} interleaved runs")
    print(f"{'model':<10} {'original ms':>12} {'generated ms':>13} {'ratio':>7} {'max abs err':>12}")
    for r in rows:
        print(f"{r['model']:<10} {r['orig_ms']:>12.2f} {r['gen_ms']:>13.2f} {r['ratio']:>7.3f} "
              f"{r['max_abs_err']:>12.2e}")


if __name__ == "__main__":
    main()
