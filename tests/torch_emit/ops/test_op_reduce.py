"""Reductions: attribute vs input axes, dynamic axes, noop_with_empty_axes, empty sets."""
import numpy as np
import pytest

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model

rng = np.random.default_rng(1)
X = rng.standard_normal((2, 3, 4), dtype=np.float32)
OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
       "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_old_opset_axes_attribute(op, keepdims):
    out = [2, 1, 1] if keepdims else [2]
    m = one_node_model(op, {"x": (F32, [2, 3, 4])}, {"y": (F32, out)},
                       attrs={"axes": [-1, 1], "keepdims": keepdims}, opset=11)
    assert_matches_ort(m, {"x": X})


@pytest.mark.parametrize("op", OPS)
def test_dynamic_axes_input(op):
    m = one_node_model(op, {"x": (F32, [2, 3, 4]), "axes": (I64, [None])}, {"y": (F32, None)},
                       attrs={"keepdims": 0}, opset=18)
    src = generate_torch(m)[0]
    assert ".tolist()" in src
    assert_matches_ort(m, {"x": X, "axes": np.array([0, -1], np.int64)})
    assert_matches_ort(m, {"x": X, "axes": np.array([], np.int64)})


def test_noop_with_empty_axes_is_identity():
    m = one_node_model("ReduceSum", {"x": (F32, [2, 3, 4])}, {"y": (F32, [2, 3, 4])},
                       attrs={"noop_with_empty_axes": 1}, opset=13)
    src = generate_torch(m)[0]
    assert "torch.sum" not in src
    assert_matches_ort(m, {"x": X})


def test_constant_axes_print_as_literal():
    m = one_node_model("ReduceMean", {"x": (F32, [2, 3, 4])}, {"y": (F32, [2, 3, 1])},
                       inits={"axes": np.array([-1], np.int64)}, opset=18)
    assert "torch.mean(x, dim=[2], keepdim=True)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": X})


def test_reduce_all_without_keepdims():
    m = one_node_model("ReduceLogSumExp", {"x": (F32, [2, 3, 4])}, {"y": (F32, [])},
                       attrs={"keepdims": 0}, opset=13)
    assert_matches_ort(m, {"x": X})


def test_empty_set_max_is_minus_inf():
    m = one_node_model("ReduceMax", {"x": (F32, [2, 0, 4])}, {"y": (F32, [2, 1, 4])},
                       inits={"axes": np.array([1], np.int64)}, opset=18)
    got = assert_matches_ort(m, {"x": np.zeros((2, 0, 4), np.float32)})
    assert np.all(got[0] == -np.inf)


def test_int_reduce_mean_and_bool_max():
    from onnx import TensorProto
    m = one_node_model("ReduceMax", {"x": (TensorProto.BOOL, [2, 3])},
                       {"y": (TensorProto.BOOL, [2, 1])},
                       inits={"axes": np.array([1], np.int64)}, opset=20)
    assert_matches_ort(m, {"x": np.array([[True, False, False], [False, False, False]])})
    m = one_node_model("ReduceSum", {"x": (I64, [2, 3])}, {"y": (I64, [2])},
                       attrs={"axes": [1], "keepdims": 0}, opset=11)
    assert_matches_ort(m, {"x": np.arange(6, dtype=np.int64).reshape(2, 3)})
