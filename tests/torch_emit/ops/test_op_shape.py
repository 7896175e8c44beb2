"""Shape/layout emitters against onnxruntime: dynamic shapes, old opsets, readable output."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model

rng = np.random.default_rng(0)


def _x(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _src(model):
    return generate_torch(model)[0]


def _model(nodes, inputs, outputs, inits=None, opset=17):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in outputs.items()],
        [numpy_helper.from_array(v, n) for n, v in (inits or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


# ---- Reshape ------------------------------------------------------------------------------
def test_reshape_const_shape_is_literal():
    m = one_node_model("Reshape", {"x": (F32, ["N", 3, 4])}, {"y": (F32, None)},
                       inits={"s": np.array([0, -1], np.int64)})
    src = _src(m)
    assert "x.reshape(x.shape[0], -1)" in src
    assert_matches_ort(m, {"x": _x(5, 3, 4)})


def test_reshape_allowzero_keeps_zero():
    m = one_node_model("Reshape", {"x": (F32, [0, 3])}, {"y": (F32, None)},
                       {"allowzero": 1}, inits={"s": np.array([3, 0], np.int64)}, opset=14)
    assert "x.reshape(3, 0)" in _src(m)
    assert_matches_ort(m, {"x": np.zeros((0, 3), np.float32)})


def test_reshape_opset1_attribute():
    m = one_node_model("Reshape", {"x": (F32, [2, 6])}, {"y": (F32, None)},
                       {"shape": [3, -1]}, opset=1)
    src = _src(m)
    assert "x.reshape(3, -1)" in src


def test_shape_arithmetic_stays_dynamic():
    # y = x.reshape(batch, -1) computed the way exporters do: Shape -> Gather -> Unsqueeze ->
    # Concat -> Reshape
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    m = _model(nodes, {"x": (F32, ["N", 3, 4])}, {"y": (F32, None)},
               {"zero": np.array(0, np.int64), "ax0": np.array([0], np.int64),
                "minus1": np.array([-1], np.int64)}, opset=13)
    src = _src(m)
    # the chain is tracked as Python ints: one reshape, no shape tensors
    assert "y = x.reshape(x.shape[0], -1)" in src, src
    assert "torch.tensor(" not in src
    for n in (1, 3):
        out = assert_matches_ort(m, {"x": _x(n, 3, 4)})
        assert out[0].shape == (n, 12)


def test_reshape_dynamic_shape_with_zero():
    m = one_node_model("Reshape", {"x": (F32, [2, 3, 4]), "s": (I64, [3])}, {"y": (F32, None)})
    assert "_onnx_reshape(" in _src(m)
    assert_matches_ort(m, {"x": _x(2, 3, 4), "s": np.array([0, -1, 2], np.int64)})


# ---- Flatten / Transpose / Squeeze / Unsqueeze ---------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_flatten(axis):
    m = one_node_model("Flatten", {"x": (F32, [2, 3, 4])}, {"y": (F32, None)}, {"axis": axis})
    assert_matches_ort(m, {"x": _x(2, 3, 4)})


def test_flatten_unknown_rank_negative_axis():
    m = one_node_model("Flatten", {"x": (F32, None)}, {"y": (F32, None)}, {"axis": -2})
    assert_matches_ort(m, {"x": _x(2, 3, 4, 5)})


def test_transpose_permute():
    m = one_node_model("Transpose", {"x": (F32, [2, 3, 4])}, {"y": (F32, None)},
                       {"perm": [2, 0, 1]})
    assert "x.permute(2, 0, 1)" in _src(m)
    assert_matches_ort(m, {"x": _x(2, 3, 4)})


def test_squeeze_unsqueeze_old_attrs():
    m = one_node_model("Squeeze", {"x": (F32, [1, 3, 1])}, {"y": (F32, None)},
                       {"axes": [0, -1]}, opset=11)
    assert_matches_ort(m, {"x": _x(1, 3, 1)})
    m = one_node_model("Unsqueeze", {"x": (F32, [3, 4])}, {"y": (F32, None)},
                       {"axes": [0, -1]}, opset=11)
    assert "x.unsqueeze(0).unsqueeze(3)" in _src(m)
    assert_matches_ort(m, {"x": _x(3, 4)})


def test_unsqueeze_dynamic_axes():
    m = one_node_model("Unsqueeze", {"x": (F32, [3, 4]), "a": (I64, [2])}, {"y": (F32, None)})
    assert_matches_ort(m, {"x": _x(3, 4), "a": np.array([-1, 1], np.int64)})


# ---- Split ----------------------------------------------------------------------------------
def test_split_uneven_num_outputs():
    m = one_node_model("Split", {"x": (F32, [7, 2])}, {"a": (F32, None), "b": (F32, None),
                                                     "c": (F32, None)},
                       {"num_outputs": 3}, opset=18)
    assert "torch.split(x, [3, 3, 1], dim=0)" in _src(m)
    assert_matches_ort(m, {"x": _x(7, 2)})


def test_split_attr_opset11_and_dynamic_split_input():
    m = one_node_model("Split", {"x": (F32, [2, 6])}, {"a": (F32, None), "b": (F32, None)},
                       {"axis": 1, "split": [2, 4]}, opset=11)
    assert_matches_ort(m, {"x": _x(2, 6)})
    m = one_node_model("Split", {"x": (F32, [2, 6]), "s": (I64, [2])},
                       {"a": (F32, None), "b": (F32, None)}, {"axis": 1}, opset=13)
    assert_matches_ort(m, {"x": _x(2, 6), "s": np.array([5, 1], np.int64)})


def test_split_unknown_dim_equal_parts():
    m = one_node_model("Split", {"x": (F32, ["N", 4])}, {"a": (F32, None), "b": (F32, None)},
                       {"axis": 0}, opset=13)
    assert_matches_ort(m, {"x": _x(6, 4)})


# ---- Slice ----------------------------------------------------------------------------------
def test_slice_const_is_python_slicing():
    m = one_node_model("Slice", {"x": (F32, [4, 5])}, {"y": (F32, None)},
                       inits={"s": np.array([1], np.int64), "e": np.array([3], np.int64),
                              "a": np.array([1], np.int64)})
    assert "x[:, 1:3]" in _src(m)
    assert_matches_ort(m, {"x": _x(4, 5)})


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([-1, 0], [-2**63, 2**63 - 1], [0, 1], [-1, 2]),
    ([10], [-10], [1], [-3]),
    ([-100], [100], [-1], [1]),
    ([1, 4], [1000, 0], [0, 1], [1, -2]),
    ([3], [1], [0], [1]),  # empty
])
def test_slice_negative_steps_and_clamping(starts, ends, axes, steps):
    inits = {"s": np.array(starts, np.int64), "e": np.array(ends, np.int64),
             "a": np.array(axes, np.int64), "k": np.array(steps, np.int64)}
    m = one_node_model("Slice", {"x": (F32, [4, 6])}, {"y": (F32, None)}, inits=inits)
    assert "_onnx_slice" not in _src(m)
    assert_matches_ort(m, {"x": _x(4, 6)})
    # the same with unknown dims goes through the run-time helper
    m = one_node_model("Slice", {"x": (F32, ["A", "B"])}, {"y": (F32, None)}, inits=inits)
    assert_matches_ort(m, {"x": _x(4, 6)})


def test_slice_dynamic_starts_ends():
    m = one_node_model("Slice", {"x": (F32, [5, 6]), "s": (I64, [2]), "e": (I64, [2])},
                       {"y": (F32, None)}, inits={"a": np.array([0, 1], np.int64),
                                                  "k": np.array([1, -1], np.int64)})
    assert "_onnx_slice(" in _src(m)
    assert_matches_ort(m, {"x": _x(5, 6), "s": np.array([1, -1], np.int64),
                           "e": np.array([4, -5], np.int64)})


def test_slice_opset1_attributes():
    m = one_node_model("Slice", {"x": (F32, [4, 5])}, {"y": (F32, None)},
                       {"starts": [1, 0], "ends": [3, -1], "axes": [0, 1]}, opset=1)
    assert "x[1:3, :-1]" in _src(m)


# ---- Expand / Tile / Pad --------------------------------------------------------------------
def test_expand_bidirectional():
    m = one_node_model("Expand", {"x": (F32, [3, 1])}, {"y": (F32, None)},
                       inits={"s": np.array([2, 1, 4], np.int64)})
    assert "x.expand(2, -1, 4)" in _src(m)
    assert_matches_ort(m, {"x": _x(3, 1)})
    m = one_node_model("Expand", {"x": (F32, [3, 1]), "s": (I64, [2])}, {"y": (F32, None)})
    assert_matches_ort(m, {"x": _x(3, 1), "s": np.array([1, 5], np.int64)})


def test_tile_const_and_dynamic():
    m = one_node_model("Tile", {"x": (F32, [2, 3])}, {"y": (F32, None)},
                       inits={"r": np.array([2, 1], np.int64)})
    assert "x.repeat(2, 1)" in _src(m)
    assert_matches_ort(m, {"x": _x(2, 3)})
    m = one_node_model("Tile", {"x": (F32, [2, 3]), "r": (I64, [2])}, {"y": (F32, None)})
    assert_matches_ort(m, {"x": _x(2, 3), "r": np.array([1, 3], np.int64)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(mode):
    m = one_node_model("Pad", {"x": (F32, [1, 2, 4, 5])}, {"y": (F32, None)}, {"mode": mode},
                       inits={"p": np.array([0, 0, 2, 1, 0, 1, 3, 2], np.int64)}, opset=19)
    src = _src(m)
    if mode == "constant":
        assert "F.pad(x, [1, 2, 2, 3, 0, 1])" in src
    assert_matches_ort(m, {"x": _x(1, 2, 4, 5)})


def test_pad_negative_and_value_and_axes():
    m = one_node_model("Pad", {"x": (F32, [3, 5])}, {"y": (F32, None)},
                       inits={"p": np.array([1, -2], np.int64), "v": np.array(1.5, np.float32),
                              "a": np.array([-1], np.int64)}, opset=18)
    assert "value=1.5" in _src(m)
    assert_matches_ort(m, {"x": _x(3, 5)})


def test_pad_dynamic_pads():
    m = one_node_model("Pad", {"x": (F32, [3, 5]), "p": (I64, [4])}, {"y": (F32, None)},
                       {"mode": "reflect"}, opset=13)
    assert_matches_ort(m, {"x": _x(3, 5), "p": np.array([1, 2, 2, 0], np.int64)})


def test_pad_opset2_attribute():
    m = one_node_model("Pad", {"x": (F32, [3, 5])}, {"y": (F32, None)},
                       {"pads": [0, 1, 0, 2], "value": 2.0}, opset=2)
    src = _src(m)
    assert "F.pad(x, [1, 2], value=2.0)" in src


# ---- Shape / Size / ConstantOfShape / Cast / Range ------------------------------------------
def test_shape_start_end_and_size():
    m = one_node_model("Shape", {"x": (F32, ["N", 3, 4])}, {"y": (I64, None)},
                       {"start": 1, "end": -1}, opset=15)
    assert_matches_ort(m, {"x": _x(2, 3, 4)})
    m = one_node_model("Size", {"x": (F32, ["N", 3])}, {"y": (I64, None)})
    assert_matches_ort(m, {"x": _x(2, 3)})


def test_constant_of_shape_dynamic():
    v = numpy_helper.from_array(np.array([7], np.int32), "value")
    m = one_node_model("ConstantOfShape", {"s": (I64, [2])}, {"y": (TensorProto.INT32, None)},
                       {"value": v})
    assert "torch.full(" in _src(m)
    assert_matches_ort(m, {"s": np.array([2, 3], np.int64)})


@pytest.mark.parametrize("to", [TensorProto.INT32, TensorProto.FLOAT16, TensorProto.BOOL,
                                TensorProto.UINT8, TensorProto.DOUBLE])
def test_cast(to):
    m = one_node_model("Cast", {"x": (F32, [8])}, {"y": (to, None)}, {"to": to})
    assert ".to(torch." in _src(m)
    x = np.array([-2.7, -0.5, 0.0, 0.4, 1.5, 3.9, 100.2, 7.0], np.float32)
    if to == TensorProto.UINT8:
        x = np.abs(x)
    assert_matches_ort(m, {"x": x})


def test_cast_to_string_fails_cleanly():
    from nnport.errors import ConversionError

    m = one_node_model("Cast", {"x": (F32, [2])}, {"y": (TensorProto.STRING, None)},
                       {"to": TensorProto.STRING})
    with pytest.raises(ConversionError, match="string"):
        _src(m)


def test_range_dynamic():
    m = one_node_model("Range", {"a": (I64, []), "b": (I64, []), "c": (I64, [])},
                       {"y": (I64, None)})
    assert_matches_ort(m, {"a": np.array(2, np.int64), "b": np.array(11, np.int64),
                           "c": np.array(3, np.int64)})


def test_eyelike_offset_and_trilu_dynamic_k():
    m = one_node_model("EyeLike", {"x": (F32, [3, 4])}, {"y": (F32, None)}, {"k": -1})
    assert_matches_ort(m, {"x": _x(3, 4)})
    m = one_node_model("Trilu", {"x": (F32, [4, 4]), "k": (I64, [])}, {"y": (F32, None)},
                       {"upper": 0}, opset=14)
    assert_matches_ort(m, {"x": _x(4, 4), "k": np.array(1, np.int64)})


def test_depth_space_readable():
    m = one_node_model("DepthToSpace", {"x": (F32, [1, 8, 2, 3])}, {"y": (F32, None)},
                       {"blocksize": 2, "mode": "CRD"})
    assert "F.pixel_shuffle(x, 2)" in _src(m)
    assert_matches_ort(m, {"x": _x(1, 8, 2, 3)})
    m = one_node_model("SpaceToDepth", {"x": (F32, [2, 3, 4, 6])}, {"y": (F32, None)},
                       {"blocksize": 2})
    assert_matches_ort(m, {"x": _x(2, 3, 4, 6)})


def test_center_crop_pad_dynamic_shape():
    m = one_node_model("CenterCropPad", {"x": (F32, [5, 4, 3]), "s": (I64, [2])},
                       {"y": (F32, None)}, {"axes": [0, 1]}, opset=18)
    assert_matches_ort(m, {"x": _x(5, 4, 3), "s": np.array([2, 7], np.int64)})


@pytest.mark.parametrize("to", [TensorProto.UINT16, TensorProto.UINT32, TensorProto.INT8])
def test_cast_int_wraps_to_unsigned(to):
    m = one_node_model("Cast", {"x": (TensorProto.INT32, [5])}, {"y": (to, None)}, {"to": to})
    assert_matches_ort(m, {"x": np.array([-1, 0, 70000, -70000, 300], np.int32)})


@pytest.mark.parametrize("src,to", [(TensorProto.FLOAT, TensorProto.UINT32),
                                    (TensorProto.INT16, TensorProto.UINT16),
                                    (TensorProto.UINT16, TensorProto.INT16)])
def test_bitcast_unsigned(src, to):
    m = one_node_model("BitCast", {"x": (src, [4])}, {"y": (to, None)}, {"to": to}, opset=26)
    x = {TensorProto.FLOAT: np.array([-1.5, 0, 2, 1e30], np.float32),
         TensorProto.INT16: np.array([-1, 0, -32768, 5], np.int16),
         TensorProto.UINT16: np.array([65535, 0, 32768, 5], np.uint16)}[src]
    from util import torch_run

    got = torch_run(m, {"x": x})[0]
    np.testing.assert_array_equal(got, x.view(helper.tensor_dtype_to_np_dtype(to)))
