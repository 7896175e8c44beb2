"""NonMaxSuppression in generated code (nnport's plain-torch ``_nms`` helper) against
torchvision.ops.nms, on the case that made the old helper run out of memory: torchvision's
SSDlite sends its ~27,000 candidate boxes through ONE NMS, made class-aware by offsetting each
class's boxes by ``class * (max_coordinate + 1)`` (the batched_nms trick).

    /work/anchors/bin/python benchmarks/perf_nms.py [--boxes 27000] [--classes 91] [--repeat 5]

Run it in an environment that has torchvision (e.g. the anchors venv); without torchvision only
nnport's time is printed.  The helper is loaded from its file (it needs only torch).  Both get
the same boxes (in their own coordinate order) and the same scores; the table gives the median
time of ``--repeat`` runs, peak RSS growth, and whether the kept sets are equal (torchvision's
IoU arithmetic is not onnxruntime's, so rare boundary cases may differ; nnport's exactness
against onnxruntime is what tests/torch_emit/ops/test_op_detect.py checks).
Target (issue 16): within 2x of torchvision's time.
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
H_DETECT = HERE.parent / "src" / "nnport" / "torch_emit" / "helpers" / "h_detect.py"


def load_helper():
    spec = importlib.util.spec_from_file_location("h_detect", H_DETECT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._nms


def ssd_like(n: int, classes: int, seed: int = 0):
    """Anchor-like boxes (x1, y1, x2, y2) on a 320x320 image, clustered around objects, with
    per-class scores; returns the offset boxes and scores of the top-n (class, box) pairs."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, 2, generator=g) * 320
    objects = torch.rand(40, 2, generator=g) * 320
    near = torch.randint(0, 40, (n // 2,), generator=g)
    centers[: n // 2] = objects[near] + torch.randn(n // 2, 2, generator=g) * 6
    wh = torch.rand(n, 2, generator=g) * 80 + 8
    boxes = torch.cat([centers - wh / 2, centers + wh / 2], 1).clamp(0, 320)
    labels = torch.randint(0, classes, (n,), generator=g)
    scores = torch.rand(n, generator=g)
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return boxes + offset, scores


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boxes", type=int, default=27000)
    ap.add_argument("--classes", type=int, default=91)
    ap.add_argument("--iou", type=float, default=0.55)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    nms = load_helper()
    boxes, scores = ssd_like(args.boxes, args.classes)
    onnx_boxes = boxes[:, [1, 0, 3, 2]].contiguous()[None]  # ONNX: (batch, n, [y1, x1, y2, x2])
    onnx_scores = scores[None, None]

    def ours():
        return nms(onnx_boxes, onnx_scores, args.boxes, args.iou, None, 0)[:, 2]

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_ours, keep_ours = timed(ours, args.repeat)
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    print(f"{args.boxes} boxes, {args.classes} classes offset into one NMS, iou {args.iou}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeat}")
    print(f"{'implementation':<24} {'time ms':>9} {'kept':>7} {'peak RSS +MB':>13}")
    print(f"{'nnport _nms':<24} {t_ours * 1e3:>9.1f} {keep_ours.numel():>7} "
          f"{rss_ours / 1024:>13.1f}")
    try:
        import torchvision
    except ImportError:
        print("torchvision not importable here: no comparison")
        return
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_tv, keep_tv = timed(lambda: torchvision.ops.nms(boxes, scores, args.iou), args.repeat)
    rss_tv = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss1
    same = keep_tv.numel() == keep_ours.numel() and bool((keep_tv == keep_ours).all())
    print(f"{'torchvision.ops.nms':<24} {t_tv * 1e3:>9.1f} {keep_tv.numel():>7} "
          f"{rss_tv / 1024:>13.1f}")
    print(f"ratio nnport / torchvision: {t_ours / t_tv:.2f}x; same kept boxes: {same}")


if __name__ == "__main__":
    main()
