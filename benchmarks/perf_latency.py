"""Latency of nnport-generated PyTorch code vs the module it was exported from.

    python benchmarks/perf_latency.py [--runs 30] [--models vit,resnet50,convnext]
    python benchmarks/perf_latency.py --timm [--runs 30] [--models resnet50,convnext,vit,swin]

Each model (transformers config, random weights) is exported to ONNX (TorchScript exporter),
converted with ``nnport.to_torch`` and both modules are timed in one process, batch 1,
2 threads, interleaved (original, generated, original, ...), median of N runs.
Prints a table; a ratio <= 1.0 means the generated code is at least as fast.

``--timm`` (needs timm, e.g. the anchors venv): the original modules are timm's resnet50,
convnext_tiny, vit_tiny_patch16_224 and swin_tiny_patch4_window7_224 (random weights), and
onnx2torch's module for the same ONNX file is timed beside nnport's when onnx2torch imports.
nnport is timed twice: the in-memory ``nnport.to_torch`` module and the ``model.py`` +
``model.safetensors`` that ``nnport convert`` writes, loaded back ("files").
Denormals are flushed to zero (both modes): timm's randomly initialized ResNet-50 computes
with denormal floats (2-4x slower), which trained weights do not; folding BatchNorm into the
convolutions (as the ONNX export does) happens to avoid them, which would flatter the
converted modules.  The table shows medians and, for a loaded machine, minimums.
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


TIMM = {"resnet50": "resnet50", "convnext": "convnext_tiny", "vit": "vit_tiny_patch16_224",
        "swin": "swin_tiny_patch4_window7_224"}


def _interleaved(mods: dict, x: torch.Tensor, runs: int) -> dict:
    """(median, min) seconds per module, the modules run round-robin (one call each per
    round)."""
    times = {k: [] for k in mods}
    with torch.inference_mode():
        for _ in range(3):  # warm up all
            for mod in mods.values():
                mod(x)
        for _ in range(runs):
            for key, mod in mods.items():
                t = time.perf_counter()
                mod(x)
                times[key].append(time.perf_counter() - t)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def bench_timm(name: str, runs: int, folder: Path) -> dict:
    import timm

    import nnport

    torch.manual_seed(0)
    orig = timm.create_model(TIMM[name], pretrained=False).eval()
    x = torch.randn(1, 3, 224, 224)
    path = folder / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(orig, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["out"])
    mods = {"timm": orig, "nnport": nnport.to_torch(str(path)).eval()}
    # what `nnport convert` writes, loaded back: its nn.Linear weights are contiguous copies
    # (to_torch's are transposed views of the mapped ONNX weights)
    from nnport.verify.torch_runner import load_generated

    py = folder / name / "model.py"
    py.parent.mkdir(exist_ok=True)
    nnport.convert(str(path), str(py), verify=False)
    mods["nnport files"] = load_generated(py).eval()
    notes = {}
    try:
        import onnx
        from onnx2torch import convert as o2t_convert

        mods["onnx2torch"] = o2t_convert(onnx.load(str(path))).eval()
    except ImportError:
        notes["onnx2torch"] = "not installed"
    except Exception as exc:  # a model onnx2torch cannot convert
        notes["onnx2torch"] = f"fails: {type(exc).__name__} {str(exc)[:12]}"
    errs = {}
    with torch.no_grad():
        ref = orig(x)
        for k, m in mods.items():
            if k != "timm":
                errs[k] = (ref - m(x)).abs().max().item()
    res = _interleaved(mods, x, runs)
    return {"model": TIMM[name], "ms": {k: v[0] * 1e3 for k, v in res.items()},
            "min": {k: v[1] * 1e3 for k, v in res.items()}, "errs": errs, "notes": notes}


def main_timm(args) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            rows.append(bench_timm(name, args.runs, Path(d)))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch 1, "
          f"median of {args.runs} interleaved runs; ratio = converted / timm")
    print("nnport: nnport.to_torch (in memory); files: model.py + model.safetensors loaded")
    print(f"{'model':<30} {'timm ms':>8} {'nnport ms':>10} {'ratio':>6} {'(min)':>6} "
          f"{'files ratio':>11} "
          f"{'onnx2torch ms':>14} {'ratio':>6} {'(min)':>6} {'nnport err':>11} {'o2t err':>9}")
    for r in rows:
        ms, mn, t = r["ms"], r["min"], r["ms"]["timm"]
        files = f"{ms['nnport files'] / t:>11.2f}"
        o2t = (f"{ms['onnx2torch']:>14.2f} {ms['onnx2torch'] / t:>6.2f} "
               f"{mn['onnx2torch'] / mn['timm']:>6.2f}" if "onnx2torch" in ms
               else f"{r['notes'].get('onnx2torch', '-'):>28}")
        o2t_err = f"{r['errs']['onnx2torch']:>9.1e}" if "onnx2torch" in r["errs"] else f"{'-':>9}"
        print(f"{r['model']:<30} {t:>8.2f} {ms['nnport']:>10.2f} {ms['nnport'] / t:>6.2f} "
              f"{mn['nnport'] / mn['timm']:>6.2f} {files} {o2t} {r['errs']['nnport']:>11.1e} "
              f"{o2t_err}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--models", default=None,
                    help="default: vit,resnet50,convnext (with --timm: resnet50,convnext,vit,swin)")
    ap.add_argument("--timm", action="store_true",
                    help="time timm's original modules (and onnx2torch's output when installed)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)  # see the module docstring
    torch.manual_seed(0)
    if args.timm:
        args.models = args.models or ",".join(TIMM)
        return main_timm(args)
    args.models = args.models or "vit,resnet50,convnext"
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
