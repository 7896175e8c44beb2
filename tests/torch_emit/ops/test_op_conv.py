"""Conv / ConvTranspose / DeformConv emitters against onnxruntime, plus readable output."""
import numpy as np
import pytest

from nnport.convert import generate_torch
from util import F32, assert_matches_ort, one_node_model

rng = np.random.default_rng(0)


def _w(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _src(model):
    return generate_torch(model)[0]


def test_conv_const_weight_is_nn_conv2d():
    m = one_node_model("Conv", {"x": (F32, [1, 3, 16, 16])}, {"y": (F32, None)},
                       {"kernel_shape": [7, 7], "strides": [2, 2], "pads": [3, 3, 3, 3]},
                       inits={"conv1.weight": _w(8, 3, 7, 7), "conv1.bias": _w(8)})
    src = _src(m)
    assert "nn.Conv2d(3, 8, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3))" in src
    assert "self.conv1(x)" in src
    assert_matches_ort(m, {"x": _w(1, 3, 16, 16)}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("attrs", [
    {"pads": [0, 1, 2, 0], "strides": [2, 1]},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "VALID", "group": 2},
])
def test_conv2d_padding_modes(attrs):
    m = one_node_model("Conv", {"x": (F32, [2, 4, 9, 10])}, {"y": (F32, None)}, attrs,
                       inits={"w": _w(6, 4 // attrs.get("group", 1), 3, 3)})
    src = _src(m)
    assert "nn.Conv2d(" in src
    assert_matches_ort(m, {"x": _w(2, 4, 9, 10)}, rtol=1e-4, atol=1e-4)


def test_conv_same_dynamic_sizes_pads_at_run_time():
    m = one_node_model("Conv", {"x": (F32, ["N", 3, "H", "W"])}, {"y": (F32, None)},
                       {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, inits={"w": _w(4, 3, 3, 3)})
    assert "_pad_same(" in _src(m)
    for h, w in [(7, 8), (10, 5)]:
        assert_matches_ort(m, {"x": _w(1, 3, h, w)}, rtol=1e-4, atol=1e-4)


def test_conv_dynamic_weight_uses_functional():
    m = one_node_model("Conv", {"x": (F32, [1, 2, 8]), "w": (F32, [4, 2, 3]), "b": (F32, [4])},
                       {"y": (F32, None)}, {"pads": [1, 1], "dilations": [2]})
    assert "F.conv1d(" in _src(m)
    assert_matches_ort(m, {"x": _w(1, 2, 8), "w": _w(4, 2, 3), "b": _w(4)}, rtol=1e-4, atol=1e-4)


def test_conv3d_groups():
    m = one_node_model("Conv", {"x": (F32, [1, 4, 5, 6, 7])}, {"y": (F32, None)},
                       {"group": 4, "pads": [1, 0, 1, 1, 0, 1]},
                       inits={"w": _w(8, 1, 3, 2, 3), "b": _w(8)})
    assert "nn.Conv3d(4, 8" in _src(m)
    assert_matches_ort(m, {"x": _w(1, 4, 5, 6, 7)}, rtol=1e-4, atol=1e-4)


def test_conv_opset1():
    m = one_node_model("Conv", {"x": (F32, [1, 2, 6, 6])}, {"y": (F32, None)},
                       {"pads": [1, 1, 1, 1]}, inits={"w": _w(3, 2, 3, 3)}, opset=1)
    m.ir_version = 3
    assert_matches_ort(m, {"x": _w(1, 2, 6, 6)}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2]},
    {"strides": [2, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 1]},
    {"strides": [3, 2], "output_shape": [12, 9]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 2], "auto_pad": "SAME_LOWER", "dilations": [2, 1]},
    {"strides": [1, 1], "pads": [2, 2, 0, 0], "group": 2},
    {"strides": [2, 2], "output_shape": [9, 8]},
])
def test_conv_transpose(attrs):
    m = one_node_model("ConvTranspose", {"x": (F32, [1, 4, 4, 4])}, {"y": (F32, None)}, attrs,
                       inits={"w": _w(4, 3 if attrs.get("group", 1) == 1 else 2, 3, 3),
                              "b": _w(3 * attrs.get("group", 1) if attrs.get("group", 1) == 1 else 4)})
    assert_matches_ort(m, {"x": _w(1, 4, 4, 4)}, rtol=1e-4, atol=1e-4)


def test_conv_transpose_readable():
    m = one_node_model("ConvTranspose", {"x": (F32, [1, 4, 5])}, {"y": (F32, None)},
                       {"strides": [2], "pads": [1, 1], "output_padding": [1]},
                       inits={"up.weight": _w(4, 2, 4)})
    src = _src(m)
    assert "nn.ConvTranspose1d(4, 2, kernel_size=4, stride=2, padding=1, output_padding=1, bias=False)" in src
    assert_matches_ort(m, {"x": _w(1, 4, 5)}, rtol=1e-4, atol=1e-4)


def test_deform_conv_zero_offset_equals_conv():
    # zero offsets and unit mask: DeformConv is a plain convolution
    x, w, b = _w(1, 2, 6, 6), _w(3, 2, 3, 3), _w(3)
    m = one_node_model("DeformConv", {"x": (F32, [1, 2, 6, 6]), "w": (F32, [3, 2, 3, 3]),
                                      "off": (F32, [1, 18, 6, 6]), "b": (F32, [3])},
                       {"y": (F32, None)}, {"pads": [1, 1, 1, 1]}, opset=19)
    import torch
    import nnport
    mod = nnport.to_torch(m)
    got = mod(torch.from_numpy(x), torch.from_numpy(w), torch.zeros(1, 18, 6, 6), torch.from_numpy(b))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1)
    assert torch.allclose(got, ref, atol=1e-5)
