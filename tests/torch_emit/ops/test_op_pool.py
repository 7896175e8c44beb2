"""Pooling emitters against onnxruntime, plus readable output."""
import numpy as np
import pytest
from onnx import TensorProto

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model

rng = np.random.default_rng(0)


def _x(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_maxpool_symmetric_is_functional_call():
    m = one_node_model("MaxPool", {"x": (F32, [1, 3, 8, 8])}, {"y": (F32, None)},
                       {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
    src = generate_torch(m)[0]
    assert "F.max_pool2d(x, (3, 3), stride=(2, 2), padding=(1, 1))" in src
    assert_matches_ort(m, {"x": _x(1, 3, 8, 8)})


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "pads": [0, 0, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [3, 3], "strides": [3, 3], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 0, 0, 1]},
])
def test_maxpool_variants(attrs):
    m = one_node_model("MaxPool", {"x": (F32, [2, 3, 7, 8])}, {"y": (F32, None)}, attrs)
    assert_matches_ort(m, {"x": _x(2, 3, 7, 8)})


@pytest.mark.parametrize("order", [0, 1])
def test_maxpool_indices(order):
    m = one_node_model("MaxPool", {"x": (F32, [2, 3, 5, 6])},
                       {"y": (F32, None), "i": (I64, None)},
                       {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 0, 0, 1],
                        "storage_order": order})
    assert_matches_ort(m, {"x": _x(2, 3, 5, 6)})


def test_maxpool_same_dynamic():
    m = one_node_model("MaxPool", {"x": (F32, [1, 2, "H", "W"])}, {"y": (F32, None)},
                       {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"})
    assert "_same_pads(list(x.shape[2:])" in generate_torch(m)[0]
    for h, w in [(5, 6), (8, 3)]:
        assert_matches_ort(m, {"x": _x(1, 2, h, w)})


def test_maxpool_int8():
    m = one_node_model("MaxPool", {"x": (TensorProto.INT8, [1, 1, 4, 4])},
                       {"y": (TensorProto.INT8, None)},
                       {"kernel_shape": [2, 2], "pads": [0, 0, 1, 1]}, opset=12)
    assert_matches_ort(m, {"x": rng.integers(-128, 127, (1, 1, 4, 4)).astype(np.int8)})


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "pads": [1, 1, 1, 1],
     "count_include_pad": 1},
    {"kernel_shape": [2, 3], "pads": [0, 1, 1, 2]},
    {"kernel_shape": [2, 3], "pads": [0, 1, 1, 2], "count_include_pad": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]},
])
def test_average_pool(attrs):
    m = one_node_model("AveragePool", {"x": (F32, [1, 2, 7, 8])}, {"y": (F32, None)}, attrs,
                       opset=19)
    assert_matches_ort(m, {"x": _x(1, 2, 7, 8)}, rtol=1e-5, atol=1e-6)


def test_average_pool_readable():
    m = one_node_model("AveragePool", {"x": (F32, [1, 2, 8, 8])}, {"y": (F32, None)},
                       {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=7)
    assert "F.avg_pool2d(x, (2, 2), stride=(2, 2))" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": _x(1, 2, 8, 8)})


@pytest.mark.parametrize("attrs,opset", [
    ({"kernel_shape": [2, 2], "p": 2}, 11),
    ({"kernel_shape": [3, 3], "p": 3, "pads": [1, 0, 1, 2]}, 11),
    ({"kernel_shape": [3], "p": 1, "strides": [2]}, 18),
])
def test_lp_pool(attrs, opset):
    shape = [1, 2, 6, 7] if len(attrs["kernel_shape"]) == 2 else [1, 2, 9]
    m = one_node_model("LpPool", {"x": (F32, shape)}, {"y": (F32, None)}, attrs, opset=opset)
    assert_matches_ort(m, {"x": _x(*shape)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op,attrs", [("GlobalAveragePool", {}), ("GlobalMaxPool", {}),
                                      ("GlobalLpPool", {"p": 3})])
def test_global_pools(op, attrs):
    m = one_node_model(op, {"x": (F32, ["N", 3, 5, 4])}, {"y": (F32, None)}, attrs)
    assert_matches_ort(m, {"x": _x(2, 3, 5, 4)}, rtol=1e-5, atol=1e-6)


def test_max_roi_pool():
    rois = np.array([[0, 0, 0, 5, 5], [1, 2, 1, 7, 6], [0, 1, 3, 3, 7]], dtype=np.float32)
    m = one_node_model("MaxRoiPool", {"x": (F32, [2, 3, 8, 8]), "rois": (F32, [3, 5])},
                       {"y": (F32, None)}, {"pooled_shape": [2, 3], "spatial_scale": 1.0})
    assert_matches_ort(m, {"x": _x(2, 3, 8, 8), "rois": rois})


def test_maxpool_then_unpool():
    from onnx import helper
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1, 2, 6, 4])],
                          [helper.make_tensor_value_info("y", F32, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert_matches_ort(m, {"x": _x(1, 2, 6, 4)})
