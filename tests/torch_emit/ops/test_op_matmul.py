"""MatMul / Gemm: readable output (``@``, ``nn.Linear``) and exact semantics vs onnxruntime."""
import numpy as np
import pytest

from nnport.convert import generate_torch
from util import F32, assert_matches_ort, one_node_model

rng = np.random.default_rng(0)


def test_matmul_prints_operator_and_broadcasts():
    m = one_node_model("MatMul", {"a": (F32, [2, 1, 3, 4]), "b": (F32, [5, 4, 6])},
                       {"y": (F32, [2, 5, 3, 6])})
    src = generate_torch(m)[0]
    assert "a @ b" in src
    assert_matches_ort(m, {"a": rng.standard_normal((2, 1, 3, 4), dtype=np.float32),
                           "b": rng.standard_normal((5, 4, 6), dtype=np.float32)})


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_constant_weight_is_nn_linear(trans_b):
    w = rng.standard_normal((8, 5) if trans_b else (5, 8), dtype=np.float32)
    c = rng.standard_normal(8, dtype=np.float32)
    m = one_node_model("Gemm", {"x": (F32, ["N", 5])}, {"y": (F32, ["N", 8])},
                       attrs={"transB": trans_b}, inits={"fc.weight": w, "fc.bias": c},
                       opset=13)
    src = generate_torch(m)[0]
    assert "nn.Linear(5, 8)" in src and "self.fc(x)" in src
    assert_matches_ort(m, {"x": rng.standard_normal((3, 5), dtype=np.float32)})


def test_gemm_without_bias_is_linear_without_bias():
    w = rng.standard_normal((4, 6), dtype=np.float32)
    m = one_node_model("Gemm", {"x": (F32, [2, 6])}, {"y": (F32, [2, 4])},
                       attrs={"transB": 1}, inits={"w": w}, opset=13)
    assert "bias=False" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": rng.standard_normal((2, 6), dtype=np.float32)})


def test_gemm_general_alpha_beta_trans():
    m = one_node_model("Gemm", {"a": (F32, [4, 3]), "b": (F32, [5, 4]), "c": (F32, [1, 5])},
                       {"y": (F32, [3, 5])},
                       attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, opset=11)
    src = generate_torch(m)[0]
    assert "nn.Linear" not in src
    assert_matches_ort(m, {"a": rng.standard_normal((4, 3), dtype=np.float32),
                           "b": rng.standard_normal((5, 4), dtype=np.float32),
                           "c": rng.standard_normal((1, 5), dtype=np.float32)})


def test_gemm_scalar_bias_constant_expands_into_linear():
    w = rng.standard_normal((3, 2), dtype=np.float32)
    m = one_node_model("Gemm", {"x": (F32, [2, 2])}, {"y": (F32, [2, 3])},
                       attrs={"transB": 1}, inits={"w": w, "c": np.array([0.25], np.float32)},
                       opset=13)
    assert "nn.Linear(2, 3)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": rng.standard_normal((2, 2), dtype=np.float32)})


def test_gemm_fp16_linear_keeps_dtype():
    from onnx import TensorProto
    F16 = TensorProto.FLOAT16
    w = rng.standard_normal((3, 4)).astype(np.float16)
    m = one_node_model("Gemm", {"x": (F16, [2, 4])}, {"y": (F16, [2, 3])},
                       attrs={"transB": 1}, inits={"w": w, "b": np.ones(3, np.float16)},
                       opset=13)
    assert "nn.Linear(4, 3)" in generate_torch(m)[0]
    got = assert_matches_ort(m, {"x": rng.standard_normal((2, 4)).astype(np.float16)},
                             rtol=1e-2, atol=1e-2)
    assert got[0].dtype == np.float16
