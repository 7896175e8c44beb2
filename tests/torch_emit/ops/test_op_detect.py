"""NonMaxSuppression and RoiAlign against onnxruntime on random data."""
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
