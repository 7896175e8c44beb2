"""Resize / Upsample / GridSample / AffineGrid / Col2Im against onnxruntime."""
import numpy as np
import pytest
from onnx import helper, numpy_helper

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model

RNG = np.random.default_rng(0)


def _resize_model(shape, out_shape, attrs, scales=None, sizes=None, roi=None, opset=19,
                  dyn_sizes=False):
    inits = {}
    node_inputs = ["X", "", "", ""]
    if roi is not None:
        inits["roi"] = np.array(roi, np.float32)
        node_inputs[1] = "roi"
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
        node_inputs[2] = "scales"
    inputs = [helper.make_tensor_value_info("X", F32, shape)]
    if sizes is not None:
        node_inputs[3] = "sizes"
        if dyn_sizes:
            inputs.append(helper.make_tensor_value_info("sizes", I64, [len(sizes)]))
        else:
            inits["sizes"] = np.array(sizes, np.int64)
    while node_inputs[-1] == "":
        node_inputs.pop()
    node = helper.make_node("Resize", node_inputs, ["Y"], **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("Y", F32, out_shape)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_nearest_2x_is_interpolate():
    m = _resize_model([1, 3, 4, 5], None, {"mode": "nearest",
                                           "coordinate_transformation_mode": "asymmetric",
                                           "nearest_mode": "floor"}, scales=[1, 1, 2, 2])
    src = generate_torch(m)[0]
    assert "F.interpolate(X, scale_factor=2.0, mode='nearest')" in src
    assert "_onnx_resize" not in src
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 3, 4, 5), dtype=np.float32)})


def test_nearest_half_pixel_sizes_is_interpolate():
    m = _resize_model([1, 2, 3, 3], None, {"mode": "nearest"}, sizes=[1, 2, 6, 12])
    src = generate_torch(m)[0]
    assert "F.interpolate(X, scale_factor=[2.0, 4.0], mode='nearest')" in src
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 3, 3), dtype=np.float32)})


@pytest.mark.parametrize("ctm,ac", [("half_pixel", False), ("align_corners", True)])
def test_linear_is_bilinear(ctm, ac):
    m = _resize_model([2, 3, 5, 7], None, {"mode": "linear",
                                           "coordinate_transformation_mode": ctm},
                      scales=[1, 1, 1.5, 0.5])
    src = generate_torch(m)[0]
    assert f"mode='bilinear', align_corners={ac}" in src
    assert_matches_ort(m, {"X": RNG.standard_normal((2, 3, 5, 7), dtype=np.float32)})


def test_linear_dynamic_sizes():
    m = _resize_model([1, 3, 5, 7], None, {"mode": "linear"}, sizes=[1, 3, 9, 4],
                      dyn_sizes=True)
    src = generate_torch(m)[0]
    assert "F.interpolate(X, size=sizes.tolist()[2:], mode='bilinear'" in src
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 3, 5, 7), dtype=np.float32),
                           "sizes": np.array([1, 3, 9, 4], np.int64)})


def test_cubic_is_bicubic():
    m = _resize_model([1, 2, 6, 6], None, {"mode": "cubic"}, scales=[1, 1, 2, 1.5])
    assert "mode='bicubic', align_corners=False" in generate_torch(m)[0]
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 6, 6), dtype=np.float32)},
                       atol=1e-5)


@pytest.mark.parametrize("attrs,scales", [
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
      "nearest_mode": "round_prefer_ceil"}, [1, 1, 3, 1.7]),
    ({"mode": "nearest", "coordinate_transformation_mode": "align_corners",
      "nearest_mode": "ceil"}, [1, 1, 0.6, 2.5]),
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 2.5, 0.7]),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
     [1, 1, 0.25, 1.3]),
    ({"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "exclude_outside": 1,
      "cubic_coeff_a": -0.5}, [1, 1, 1.8, 0.8]),
    ({"mode": "cubic", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 2.0, 3.0]),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.4, 0.6]),
    ({"mode": "nearest"}, [1, 2, 1.5, 1]),
])
def test_helper_modes(attrs, scales):
    m = _resize_model([1, 2, 6, 5], None, attrs, scales=scales)
    assert "_onnx_resize" in generate_torch(m)[0]
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 6, 5), dtype=np.float32)},
                       atol=1e-5)


def test_tf_crop_and_resize_5d_helper():
    m = _resize_model([1, 1, 4, 5, 6], None,
                      {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                       "extrapolation_value": 3.0},
                      roi=[0, 0, -0.2, 0.1, 0.3, 1, 1, 0.9, 1.2, 0.8], sizes=[1, 1, 3, 4, 5],
                      opset=13)
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 1, 4, 5, 6), dtype=np.float32)},
                       atol=1e-5)


def test_upsample9_nearest():
    m = one_node_model("Upsample", {"X": (F32, [1, 2, 3, 4])}, {"Y": (F32, None)},
                       {"mode": "nearest"}, inits={"scales": np.array([1, 1, 2, 2], np.float32)},
                       opset=9)
    assert "F.interpolate(X, scale_factor=2.0, mode='nearest')" in generate_torch(m)[0]
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 3, 4), dtype=np.float32)})


def test_upsample7_linear():
    m = one_node_model("Upsample", {"X": (F32, [1, 2, 3, 4])}, {"Y": (F32, None)},
                       {"mode": "linear", "scales": [1.0, 1.0, 2.0, 3.0]}, opset=7)
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 3, 4), dtype=np.float32)})


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("pad", ["zeros", "border", "reflection"])
def test_grid_sample(mode, pad):
    m = one_node_model("GridSample", {"X": (F32, [1, 2, 4, 5]), "grid": (F32, [1, 3, 6, 2])},
                       {"Y": (F32, None)}, {"mode": mode, "padding_mode": pad,
                                            "align_corners": 0}, opset=20)
    assert "F.grid_sample(" in generate_torch(m)[0]
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 4, 5), dtype=np.float32),
                           "grid": RNG.uniform(-1.2, 1.2, (1, 3, 6, 2)).astype(np.float32)},
                       atol=1e-5)


def test_affine_grid_constant_size():
    m = one_node_model("AffineGrid", {"theta": (F32, [2, 2, 3])}, {"Y": (F32, None)},
                       {"align_corners": 1}, inits={"size": np.array([2, 3, 4, 5], np.int64)},
                       opset=20)
    assert "F.affine_grid(theta, [2, 3, 4, 5], align_corners=True)" in generate_torch(m)[0]
    assert_matches_ort(m, {"theta": RNG.standard_normal((2, 2, 3), dtype=np.float32)},
                       atol=1e-5)


def test_col2im_fold_and_asymmetric_pads():
    x = RNG.standard_normal((1, 2 * 4, 12), dtype=np.float32)
    inits = {"image_shape": np.array([4, 5], np.int64), "block_shape": np.array([2, 2], np.int64)}
    m = one_node_model("Col2Im", {"input": (F32, [1, 8, 12])}, {"Y": (F32, None)}, {},
                       inits=inits, opset=18)
    assert "F.fold(" in generate_torch(m)[0]
    assert_matches_ort(m, {"input": x})
    m = one_node_model("Col2Im", {"input": (F32, [1, 8, 20])}, {"Y": (F32, None)},
                       {"pads": [1, 0, 0, 1]}, inits=inits, opset=18)
    assert "_col2im(" in generate_torch(m)[0]
    assert_matches_ort(m, {"input": RNG.standard_normal((1, 8, 20), dtype=np.float32)})


@pytest.mark.parametrize("mode,scales", [("nearest", [1, 1, 2, 3]), ("nearest", [1, 1, 0.5, 0.6]),
                                         ("linear", [1, 1, 1.5, 2.5])])
def test_resize10(mode, scales):
    m = one_node_model("Resize", {"X": (F32, [1, 2, 4, 5])}, {"Y": (F32, None)},
                       {"mode": mode}, inits={"scales": np.array(scales, np.float32)}, opset=10)
    assert_matches_ort(m, {"X": RNG.standard_normal((1, 2, 4, 5), dtype=np.float32)})


def test_upsample1_nearest_attrs():
    from util import torch_run

    m = one_node_model("Upsample", {"X": (F32, [1, 2, 3, 4])}, {"Y": (F32, None)},
                       {"mode": "nearest", "height_scale": 2.0, "width_scale": 3.0}, opset=1)
    x = RNG.standard_normal((1, 2, 3, 4), dtype=np.float32)
    got = torch_run(m, {"X": x})[0]
    np.testing.assert_array_equal(got, x.repeat(2, axis=2).repeat(3, axis=3))


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_1d_matches_reference(mode, align):
    """GridSample-20 on one spatial dim (onnxruntime has no kernel for it).  Cubic uses zeros
    padding: for cubic + border the reference implementation differs from onnxruntime (and
    torch matches onnxruntime there)."""
    from onnx.reference import ReferenceEvaluator
    from util import torch_run

    m = one_node_model("GridSample", {"X": (F32, [2, 3, 7]), "grid": (F32, [2, 5, 1])},
                       {"Y": (F32, None)}, {"mode": mode, "align_corners": align,
                                            "padding_mode": "zeros" if mode == "cubic"
                                            else "border"}, opset=20)
    feeds = {"X": RNG.standard_normal((2, 3, 7), dtype=np.float32),
             "grid": RNG.uniform(-1.3, 1.3, (2, 5, 1)).astype(np.float32)}
    ref = ReferenceEvaluator(m).run(None, feeds)[0]
    np.testing.assert_allclose(torch_run(m, feeds)[0], ref, rtol=1e-4, atol=1e-5)
