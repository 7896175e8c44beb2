"""Latency of the generated PyTorch module against onnxruntime running the same ONNX file.

    python benchmarks/perf_runtime.py [--runs 15] [--freeze] [--models resnet50,vit,bert]
    python benchmarks/perf_runtime.py --onnx a.onnx b.onnx [--input-shape x=1,3,224,224]
    python benchmarks/perf_runtime.py --no-compile          # eager only (fast)
    python benchmarks/perf_runtime.py --original --models mobilenetv3   # + the torch original

For each model, in one process: onnxruntime (the file as given, all graph optimizations,
2 intra-op threads), the module `nnport.to_torch` returns (eager, under inference_mode), that
module compiled with plain `torch.compile` (inductor; `--freeze` turns on inductor's weight
freezing), and compiled with `nnport.compile` (freezing, inference_mode, fp32 linears in
oneDNN: `nnport/torch_compile.py`).  `--mode` is the compile mode of both.  The table shows
medians in ms, ratios to onnxruntime, and the compile times (first call) as columns of their
own.  Batch 1, 2 threads on both sides.  `--original` adds the built-in model's own torch
module, compiled with `nnport.compile` too: what the generated code costs against the code it
came from, with the same compiler.

The runtimes take turns: each round, each runtime makes one untimed call and then three
timed ones.  Threads that spin after a call steal the two cores from the next runtime's call.
onnxruntime's intra-op threads spin for tens of ms after `run` returns: on ViT-tiny the
compiled module took 41 ms right after an onnxruntime run against 18 ms right after its own
call, and 22 ms after a 100 ms pause.  The session is made with `session.force_spinning_stop`,
so its threads still spin inside a run but stop when it returns (onnxruntime back to back:
16.4 ms with it, 16.6–18.4 ms without).  torch's OpenMP threads spin after a call too
(onnxruntime took 22.6 ms right after a torch call), which the untimed call absorbs.  Each
timed call is then what a program running only that runtime sees.

Plain-torch recipe without nnport (what `--freeze` times):

    torch._inductor.config.freezing = True
    compiled = torch.compile(model.eval())
    with torch.inference_mode():
        compiled(x)

Built-in models have random weights (no download) and are exported with the TorchScript
exporter: ResNet-50, ConvNeXt-T, ViT-tiny, Swin-T and a BERT-base-sized encoder (12 layers,
hidden 768, sequence 128) from transformers configs, and MobileNetV3-Large written in plain
torch (`perf_models.py`).  `--onnx` times any ONNX files instead (the anchors zoo, for
example); their inputs are random, from the declared shapes or `--input-shape`.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_models  # noqa: E402


def _export_vision(name: str, folder: Path) -> tuple[Path, torch.nn.Module]:
    class Out(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            out = self.m(x)
            return out if isinstance(out, torch.Tensor) else out.last_hidden_state

    build = {"resnet50": perf_models.resnet50, "convnext": perf_models.convnext_tiny,
             "vit": perf_models.vit_tiny, "swin": perf_models.swin_tiny,
             "mobilenetv3": perf_models.mobilenet_v3_large}[name]
    path = folder / f"{name}.onnx"
    module = Out(build()).eval()
    with torch.no_grad():
        torch.onnx.export(module, (torch.randn(1, 3, 224, 224),), str(path),
                          dynamo=False, opset_version=17, input_names=["pixel_values"],
                          output_names=["out"])
    return path, module


class _Bert(torch.nn.Module):
    """The exported BERT's forward: (input_ids, attention_mask) -> last_hidden_state."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _builtin(name: str, folder: Path) -> tuple[Path, dict[str, np.ndarray], torch.nn.Module]:
    """The model's ONNX file, its inputs and the torch module it was exported from."""
    rng = np.random.default_rng(0)
    if name == "bert":
        path = perf_models.export_bert(folder / "bert_base.onnx", layers=12, hidden=768,
                                       heads=12, inter=3072)
        module = _Bert(perf_models.bert(12, 768, 12, 3072)).eval()  # the same seeded weights
        return path, {"input_ids": rng.integers(0, 1000, (1, 128)).astype(np.int64),
                      "attention_mask": np.ones((1, 128), np.int64)}, module
    path, module = _export_vision(name, folder)
    return path, {"pixel_values": rng.standard_normal((1, 3, 224, 224), np.float32)}, module


def _random_inputs(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    feeds = {}
    for inp in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs():
        shape = shapes.get(inp.name) or tuple(d if isinstance(d, int) else 1 for d in inp.shape)
        if "int" in inp.type:
            feeds[inp.name] = rng.integers(0, 100, shape).astype(np.int64)
        elif "bool" in inp.type:
            feeds[inp.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def ort_session(path: Path):
    """onnxruntime on ``path``: all graph optimizations, 2 intra-op threads, and threads that
    stop spinning when a run returns (see the module docstring)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bench(name: str, path: Path, feeds: dict[str, np.ndarray], args,
          original: torch.nn.Module | None = None) -> dict:
    import nnport

    sess = ort_session(path)
    gen = nnport.to_torch(str(path)).eval()
    tins = [torch.from_numpy(feeds[i.name]) for i in sess.get_inputs()]
    calls = {"onnxruntime": lambda: sess.run(None, feeds), "eager": lambda: gen(*tins)}
    compile_s = {}
    with torch.inference_mode():
        ref = sess.run(None, feeds)[0]
        out = gen(*tins)
        out = out[0] if isinstance(out, tuple) else out
        err = float(np.abs(out.numpy() - ref).max())
        if not args.no_compile:
            import torch._inductor.config as icfg

            # its own module: the two compiled wrappers do not share dynamo's cache entries
            comp = torch.compile(nnport.to_torch(str(path)).eval(),
                                 mode=None if args.mode == "default" else args.mode)
            nncomp = nnport.compile(nnport.to_torch(str(path)),
                                    mode=None if args.mode == "default" else args.mode)
            t = time.perf_counter()
            with icfg.patch(freezing=args.freeze):
                comp(*tins)
            compile_s["compiled"] = time.perf_counter() - t
            t = time.perf_counter()
            nn_out = nncomp(*tins)
            compile_s["nnport"] = time.perf_counter() - t
            check_matches("nnport.compile's output", nn_out, ref)
            calls["compiled"] = lambda: comp(*tins)
            calls["nnport"] = lambda: nncomp(*tins)
            if original is not None:
                orig = nnport.compile(original)
                t = time.perf_counter()
                orig_out = orig(*tins)
                compile_s["original"] = time.perf_counter() - t
                check_matches("the torch original", orig_out, ref)
                calls["original"] = lambda: orig(*tins)
        ms = interleaved_medians(calls, args.runs)
    torch._dynamo.reset()
    return {"model": name, "ms": ms, "compile_s": compile_s, "err": err}


def check_matches(what: str, out, ref: np.ndarray) -> None:
    """Raise when ``out`` (a tensor, or a tuple whose first item is compared) differs from
    onnxruntime's ``ref`` by more than 1e-3 of its largest magnitude (at least 1e-3)."""
    out = out[0] if isinstance(out, tuple) else out
    err = float(np.abs(np.asarray(out) - ref).max())
    if err > 1e-3 * max(1.0, float(np.abs(ref).max())):
        raise RuntimeError(f"{what} differs from onnxruntime's by {err:.2e}")


def interleaved_medians(calls: dict, runs: int) -> dict[str, float]:
    """The runtimes take turns: three warm-up calls each, then ``runs`` rounds of one untimed
    call and three timed ones per runtime (see the module docstring). Medians in ms."""
    times = {k: [] for k in calls}
    for _ in range(3):
        for fn in calls.values():
            fn()
    for _ in range(runs):
        for key, fn in calls.items():
            fn()  # untimed: absorbs the other runtime's spinning threads
            for _ in range(3):
                t = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--models", default="resnet50,mobilenetv3,vit,swin,convnext,bert")
    ap.add_argument("--onnx", nargs="*", default=None, help="time these ONNX files instead")
    ap.add_argument("--input-shape", action="append", default=[],
                    help="NAME=d0,d1,... for --onnx files with dynamic dims")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--mode", default="default",
                    help="torch.compile mode: default, reduce-overhead, max-autotune")
    ap.add_argument("--freeze", action="store_true", help="inductor weight freezing")
    ap.add_argument("--original", action="store_true",
                    help="also time the built-in model's torch module under nnport.compile")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    shapes = {}
    for spec in args.input_shape:
        k, _, v = spec.partition("=")
        shapes[k] = tuple(int(d) for d in v.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        if args.onnx:
            items = [(Path(p).stem, Path(p), _random_inputs(Path(p), shapes), None)
                     for p in args.onnx]
        else:
            items = [(n, *_builtin(n, Path(d))) for n in args.models.split(",")]
        for name, path, feeds, module in items:
            try:
                rows.append(bench(name, path, feeds, args, module if args.original else None))
            except Exception as exc:  # one model failing does not end the table
                print(f"{name}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    print(f"torch {torch.__version__}, 2 threads, batch 1, {args.runs} rounds of 1 untimed + 3 "
          f"timed calls per runtime, medians; ratios are ÷ onnxruntime; torch.compile mode "
          f"{args.mode}, freezing {args.freeze}; nnport.compile mode {args.mode}")
    print(f"{'model':<12} {'ort ms':>7} {'eager':>6} {'compiled':>9} {'nnport':>7} "
          f"{'compile s':>10} {'nnport s':>9} {'max abs err':>12}"
          + (f" {'original':>9}" if args.original else ""))
    nan = float("nan")
    for r in rows:
        ms, cs = r["ms"], r["compile_s"]
        ratio = {k: v / ms["onnxruntime"] for k, v in ms.items()}
        print(f"{r['model']:<12} {ms['onnxruntime']:>7.2f} {ratio['eager']:>6.2f} "
              f"{ratio.get('compiled', nan):>9.2f} {ratio.get('nnport', nan):>7.2f} "
              f"{cs.get('compiled', nan):>10.1f} {cs.get('nnport', nan):>9.1f} {r['err']:>12.2e}"
              + (f" {ratio.get('original', nan):>9.2f}" if args.original else ""))
    if rows:
        geo = lambda k: math.exp(statistics.mean(  # noqa: E731
            math.log(r["ms"][k] / r["ms"]["onnxruntime"]) for r in rows if k in r["ms"]))
        line = f"geometric mean ÷ onnxruntime: eager {geo('eager'):.2f}"
        if not args.no_compile:
            line += f", torch.compile {geo('compiled'):.2f}, nnport.compile {geo('nnport'):.2f}"
        if args.original and not args.no_compile:
            line += f"; the torch originals under nnport.compile {geo('original'):.2f}"
        print(line)


if __name__ == "__main__":
    main()
