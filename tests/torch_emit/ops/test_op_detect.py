"""NonMaxSuppression and RoiAlign against onnxruntime on random data."""
import os

import numpy as np
import pytest

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model, torch_run


def _random_boxes(rng, batches, n, center):
    if center:
        xy = rng.uniform(0, 10, (batches, n, 2))
        wh = rng.uniform(0.5, 4, (batches, n, 2))
        return np.concatenate([xy, wh], -1).astype(np.float32)
    a = rng.uniform(0, 10, (batches, n, 2))
    b = a + rng.uniform(-4, 4, (batches, n, 2))  # corners in either order
    return np.concatenate([a, b], -1)[..., [0, 1, 2, 3]].astype(np.float32)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("score_thr", [None, 0.3])
@pytest.mark.parametrize("opset", [10, 11])
def test_nms_random(center, score_thr, opset):
    rng = np.random.default_rng(center * 10 + opset + (score_thr is not None))
    boxes = _random_boxes(rng, 2, 40, center)
    scores = rng.uniform(0, 1, (2, 3, 40)).astype(np.float32)
    scores[0, 0, 5] = scores[0, 0, 6]  # a tie
    inits = {"max_output_boxes_per_class": np.array([7], np.int64),
             "iou_threshold": np.array([0.4], np.float32)}
    if score_thr is not None:
        inits["score_threshold"] = np.array([score_thr], np.float32)
    m = one_node_model("NonMaxSuppression", {"boxes": (F32, [2, 40, 4]),
                                             "scores": (F32, [2, 3, 40])},
                       {"sel": (I64, None)}, {"center_point_box": center}, inits=inits,
                       opset=opset)
    src = generate_torch(m)[0]
    assert "_nms(boxes, scores, max_per_class=7" in src and "torchvision" not in src
    got = assert_matches_ort(m, {"boxes": boxes, "scores": scores})
    assert got[0].shape[1] == 3 and got[0].shape[0] > 0


def test_nms_dynamic_thresholds_and_no_max():
    rng = np.random.default_rng(5)
    boxes = _random_boxes(rng, 1, 30, 0)
    scores = rng.uniform(0, 1, (1, 2, 30)).astype(np.float32)
    m = one_node_model("NonMaxSuppression", {"boxes": (F32, [1, 30, 4]),
                                             "scores": (F32, [1, 2, 30]),
                                             "max_out": (I64, [1]), "iou": (F32, [1])},
                       {"sel": (I64, None)}, {}, opset=11)
    assert_matches_ort(m, {"boxes": boxes, "scores": scores, "max_out": np.array([100]),
                           "iou": np.array([0.5], np.float32)})
    # max_output_boxes_per_class absent -> nothing selected
    m = one_node_model("NonMaxSuppression", {"boxes": (F32, [1, 30, 4]),
                                             "scores": (F32, [1, 2, 30])},
                       {"sel": (I64, None)}, {}, opset=11)
    got = assert_matches_ort(m, {"boxes": boxes, "scores": scores})
    assert got[0].shape == (0, 3)


def _nms_case(seed):
    """Boxes and scores crossing the helper's block size (128), with exact score ties and
    integer coordinates (IoU exactly at the threshold)."""
    rng = np.random.default_rng(seed)
    center = seed % 2
    n = (300, 1000)[seed % 2]
    boxes = _random_boxes(rng, 2, n, center) * [4, 4, 2, 2][:4]
    if seed % 3 == 0:
        boxes = np.round(boxes)
    boxes = boxes.astype(np.float32)
    scores = np.round(rng.uniform(0, 1, (2, 2, n)) * 20) / 20  # many ties
    return center, boxes, scores.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_nms_many_boxes_ties_thresholds(seed):
    center, boxes, scores = _nms_case(seed)
    n = boxes.shape[1]
    inits = {"max_output_boxes_per_class": np.array([(10**9, 37, 150)[seed % 3]], np.int64),
             "iou_threshold": np.array([(0.5, 0.25, 0.0, 1.0, 0.7, 0.5)[seed]], np.float32)}
    if seed % 2:
        inits["score_threshold"] = np.array([0.35], np.float32)
    m = one_node_model("NonMaxSuppression", {"boxes": (F32, [2, n, 4]),
                                             "scores": (F32, [2, 2, n])},
                       {"sel": (I64, None)}, {"center_point_box": center}, inits=inits,
                       opset=11)
    got = assert_matches_ort(m, {"boxes": boxes, "scores": scores})
    assert got[0].shape[0] > 0


_NMS_CHILD = r"""
import json, resource, sys, importlib.util
def vm_peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
import torch
torch.set_num_threads(1)
if sys.argv[1] == "baseline":
    print(json.dumps({"vm_peak": vm_peak()}))
    sys.exit(0)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
spec = importlib.util.spec_from_file_location("h_detect", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
g = torch.Generator().manual_seed(0)
n = 24000
xy = torch.rand(n, 2, generator=g) * 300
wh = torch.rand(n, 2, generator=g) * 30 + 2
cls = torch.randint(0, 40, (n, 1), generator=g).float() * 400  # batched_nms's class offsets
boxes = torch.cat([xy, xy + wh], 1) + cls
scores = torch.rand(1, 1, n, generator=g)
sel = mod._nms(boxes[None], scores, n, 0.5, None, 0)
print(json.dumps({"kept": int(sel.shape[0]), "vm_peak": vm_peak()}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_nms_memory_is_linear_in_boxes():
    """24,000 boxes in one class (torchvision's batched_nms trick): an (n, n) matrix is 2.3 GB
    of float32; the helper must run within 1 GB of address space above importing torch."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import nnport.torch_emit.helpers as helpers

    path = str(Path(helpers.__file__).with_name("h_detect.py"))
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1")
    base = subprocess.run([sys.executable, "-c", _NMS_CHILD, "baseline"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert base.returncode == 0, base.stderr[-2000:]
    limit = json.loads(base.stdout.splitlines()[-1])["vm_peak"] + (1 << 30)
    proc = subprocess.run([sys.executable, "-c", _NMS_CHILD, str(limit), path],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.splitlines()[-1])
    assert res["kept"] > 1000 and res["vm_peak"] <= limit


def test_nms_helper_scripts():
    import torch

    from nnport.torch_emit.helpers.h_detect import _nms

    boxes = torch.rand(1, 300, 4) * 10
    scores = torch.rand(1, 2, 300)
    scripted = torch.jit.script(_nms)
    assert torch.equal(scripted(boxes, scores, 50, 0.3, 0.1, 0), _nms(boxes, scores, 50, 0.3,
                                                                        0.1, 0))


@pytest.mark.parametrize("opset,ctm", [(10, None), (16, "half_pixel"),
                                       (16, "output_half_pixel")])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_random(opset, ctm, mode, sampling_ratio):
    rng = np.random.default_rng(opset + sampling_ratio)
    x = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)
    p = rng.uniform(0, 22, (6, 2))
    q = p + rng.uniform(0.5, 12, (6, 2))
    rois = np.concatenate([p, q], -1).astype(np.float32)
    rois[0] = [-3, -2, 30, 25]  # partly outside the feature map
    attrs = {"mode": mode, "output_height": 3, "output_width": 4,
             "sampling_ratio": sampling_ratio, "spatial_scale": 0.5}
    if ctm:
        attrs["coordinate_transformation_mode"] = ctm
    m = one_node_model("RoiAlign", {"X": (F32, [2, 3, 10, 12]), "rois": (F32, [6, 4]),
                                    "bi": (I64, [6])}, {"Y": (F32, None)}, attrs, opset=opset)
    assert "_roi_align(X, rois, bi" in generate_torch(m)[0]
    assert_matches_ort(m, {"X": x, "rois": rois, "bi": np.array([0, 1, 1, 0, 1, 0])},
                       atol=1e-5)


def test_roi_align_22_matches_reference():
    """onnxruntime has no RoiAlign-22 kernel: compare with ONNX's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    rois = np.array([[0.5, 1.0, 6.0, 7.5], [-1, 2, 9, 5]], np.float32)
    bi = np.array([0, 0], np.int64)
    m = one_node_model("RoiAlign", {"X": (F32, [1, 2, 8, 8]), "rois": (F32, [2, 4]),
                                    "bi": (I64, [2])}, {"Y": (F32, None)},
                       {"output_height": 2, "output_width": 3}, opset=22)
    ref = ReferenceEvaluator(m).run(None, {"X": x, "rois": rois, "bi": bi})[0]
    got = torch_run(m, {"X": x, "rois": rois, "bi": bi})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
