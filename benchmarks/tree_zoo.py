"""Generated code, flat vs module tree, on real models: timm's (anchors environment) exported
with the dynamo exporter, converted by nnport both ways.

    /work/anchors/bin/python benchmarks/tree_zoo.py [--models resnet50,vit_tiny_patch16_224]
        [--runs 10] [--no-compile] [--json out.json]

For each model (random weights, batch 1, 224x224; BatchNorm statistics and the affine
parameters of BatchNorm, LayerNorm and GroupNorm randomized, as a trained model's, so that
folding is visible and no two norms share tensors):
export with ``torch.onnx.export(dynamo=True)``; generate ``model.py`` flat (``flat=True``)
and as a tree (the default); then print, for both:

- lines of generated code and the number of classes;
- keys: of the tensors the ONNX file kept under an original state-dict key, the fraction the
  generated module holds under that key with the original's value, and the fraction of the
  original's whole state dict the generated module has by key;
- which PyTorch tools accept the module: ``torch.export.export``, ``torch.compile(fullgraph=
  True)`` (skipped with --no-compile: it is the slow column), ``torch.jit.trace``,
  ``torch.jit.script``;
- latency, in one process, 2 threads, interleaved runs, median (minimum in brackets): the
  original timm module, flat, tree; ratios to the original.

Needs timm (never a project dependency): run it with the anchors environment's Python, where
``nnport`` is importable from the checkout.  Not a test.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

DEFAULT = ["resnet50", "mobilenetv3_large_100", "efficientnet_b0", "convnext_tiny",
           "vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "regnety_002",
           "densenet121"]


def _randomize_bn(model):
    import torch

    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:  # as trained: no two norms of one width equal (the exporter would
                with torch.no_grad():  # share their tensors under one of their names)
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
        elif isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and \
                getattr(m, "weight", None) is not None:
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def _tools(module, x, compile_: bool) -> dict:
    import torch

    out = {}

    def attempt(name, fn):
        try:
            with torch.no_grad():
                fn()
            out[name] = True
        except Exception as e:  # a tool's refusal is the measurement
            out[name] = False
            out[name + "_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" \
                if str(e) else type(e).__name__

    attempt("export", lambda: torch.export.export(module, (x,)))
    if compile_:
        torch._dynamo.reset()
        attempt("compile", lambda: torch.compile(module, fullgraph=True)(x))
    attempt("trace", lambda: torch.jit.trace(module, (x,), check_trace=False))
    attempt("script", lambda: torch.jit.script(module))
    return out


def _keys(orig, module, proto) -> tuple[float, float]:
    import torch
    from onnx import numpy_helper

    osd = orig.state_dict()
    msd = module.state_dict()
    # kept: an initializer under an original key with the original's value (the optimizer's
    # BatchNorm fusion keeps the conv's name for the fused weight: not kept)
    kept = []
    for t in proto.graph.initializer:
        if t.name in osd:
            arr = torch.from_numpy(numpy_helper.to_array(t).copy())
            if tuple(arr.shape) == tuple(osd[t.name].shape) and torch.equal(
                    arr.to(osd[t.name].dtype), osd[t.name]):
                kept.append(t.name)
    good = 0
    for k in kept:
        v = msd.get(k)
        if v is not None and tuple(v.shape) == tuple(osd[k].shape) and torch.equal(
                v.to(osd[k].dtype), osd[k]):
            good += 1
    kept_rate = good / len(kept) if kept else math.nan
    by_key = len(set(msd) & set(osd)) / len(osd) if osd else math.nan
    return kept_rate, by_key


def _latency(mods: dict, x, runs: int) -> dict:
    import torch

    times = {k: [] for k in mods}
    with torch.inference_mode():
        for m in mods.values():  # warm-up
            for _ in range(2):
                m(x)
        for _ in range(runs):
            for k, m in mods.items():
                t = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - t)
    return {k: (statistics.median(v) * 1e3, min(v) * 1e3) for k, v in times.items()}


def bench(name: str, runs: int, compile_: bool, folder: Path) -> dict:
    import onnx
    import timm
    import torch

    from nnport.convert import generate_torch
    from nnport.torch_emit import build_module

    torch.manual_seed(0)
    orig = _randomize_bn(timm.create_model(name, pretrained=False)).eval()
    x = torch.randn(1, 3, 224, 224)
    path = folder / f"{name}.onnx"
    t = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(orig, (x,), str(path), dynamo=True, optimize=True,
                          input_names=["x"], output_names=["y"])
    row = {"model": name, "export_s": time.perf_counter() - t}
    proto = onnx.load(str(path))
    mods = {"original": orig}
    with torch.no_grad():
        ref = orig(x)
    for mode in ("flat", "tree"):
        source, state = generate_torch(str(path), flat=(mode == "flat"))
        module = build_module(source, state, name=f"{name}_{mode}").eval()
        with torch.no_grad():
            err = (module(x) - ref).abs().max().item()
        kept, by_key = _keys(orig, module, proto)
        row[mode] = {"lines": source.count("\n"),
                     "classes": len(re.findall(r"^class \w+\(nn\.Module\):", source, re.M)),
                     "max_abs_err": err, "kept_keys": kept, "orig_keys": by_key,
                     **_tools(module, x, compile_)}
        mods[mode] = module
    lat = _latency(mods, x, runs)
    for k, (med, low) in lat.items():
        row.setdefault(k, {}) if k != "original" else None
        if k == "original":
            row["original_ms"] = (med, low)
        else:
            row[k]["ms"] = (med, low)
            row[k]["ratio"] = med / lat["original"][0]
    return row


def _geo(values):
    values = [v for v in values if v and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT),
                    help="timm model names, comma-separated")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile(fullgraph)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    rows = []
    tools = ["export", "trace", "script"] if args.no_compile else \
        ["export", "compile", "trace", "script"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            try:
                row = bench(name, args.runs, not args.no_compile, Path(tmp))
            except Exception as e:
                print(f"{name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                      flush=True)
                continue
            rows.append(row)
            f, t = row["flat"], row["tree"]
            ok = lambda r: "".join(k[0] if r.get(k) else "-" for k in tools)  # noqa: E731
            print(f"{name:32s} lines {f['lines']:5d} -> {t['lines']:5d}  classes "
                  f"{f['classes']:2d} -> {t['classes']:2d}  kept keys {t['kept_keys']:.0%} "
                  f"(flat {f['kept_keys']:.0%})  orig keys {t['orig_keys']:.0%}  tools "
                  f"flat {ok(f)} tree {ok(t)}  ms orig {row['original_ms'][0]:.1f} flat "
                  f"{f['ms'][0]:.1f} ({f['ratio']:.2f}x) tree {t['ms'][0]:.1f} "
                  f"({t['ratio']:.2f}x)  err {t['max_abs_err']:.1e}", flush=True)
    if not rows:
        return 1
    print(f"\n{len(rows)} models; tools letters: {', '.join(tools)}")
    for mode in ("flat", "tree"):
        counts = ", ".join(f"{k} {sum(bool(r[mode].get(k)) for r in rows)}/{len(rows)}"
                           for k in tools)
        print(f"{mode:4s}: lines {sum(r[mode]['lines'] for r in rows):,}, classes "
              f"{sum(r[mode]['classes'] for r in rows)}, kept keys "
              f"{statistics.mean(r[mode]['kept_keys'] for r in rows):.0%}, {counts}, latency "
              f"geomean {_geo([r[mode]['ratio'] for r in rows]):.3f}x the original")
    for mode in ("flat", "tree"):
        for r in rows:
            for k in tools:
                if not r[mode].get(k):
                    print(f"  {mode} {r['model']} {k}: {r[mode].get(k + '_error')}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
