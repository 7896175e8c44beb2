"""Windows, DFT, STFT, MelWeightMatrix vs onnxruntime / the ONNX reference."""
import numpy as np
import pytest
from onnx import TensorProto

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model, torch_run

rng = np.random.default_rng(3)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(op, periodic):
    m = one_node_model(op, {"n": (I64, [])}, {"y": (TensorProto.DOUBLE, [None])},
                       attrs={"periodic": periodic, "output_datatype": TensorProto.DOUBLE},
                       opset=17)
    src = generate_torch(m)[0]
    assert f"_window(int(n), periodic={bool(periodic)}" in src
    assert_matches_ort(m, {"n": np.array(10, np.int64)})


def test_dynamic_window_size():
    m = one_node_model("HannWindow", {"n": (I64, [])}, {"y": (F32, [None])}, opset=17)
    assert "int(n)" in generate_torch(m)[0]
    assert_matches_ort(m, {"n": np.array(7, np.int64)})


@pytest.mark.parametrize("inverse,onesided", [(0, 0), (0, 1), (1, 0)])
def test_dft_20(inverse, onesided):
    c = 1 if onesided else 2
    m = one_node_model("DFT", {"x": (F32, [2, 8, c])}, {"y": (F32, None)},
                       attrs={"inverse": inverse, "onesided": onesided},
                       inits={"len": np.array(8, np.int64), "axis": np.array(1, np.int64)},
                       opset=20)
    assert_matches_ort(m, {"x": rng.standard_normal((2, 8, c), dtype=np.float32)},
                       rtol=1e-4, atol=1e-4)


def test_stft_with_window():
    m = one_node_model("STFT", {"x": (F32, [1, 32, 1])}, {"y": (F32, None)},
                       inits={"step": np.array(4, np.int64),
                              "w": np.hanning(8).astype(np.float32)}, opset=17)
    assert_matches_ort(m, {"x": rng.standard_normal((1, 32, 1), dtype=np.float32)},
                       rtol=1e-4, atol=1e-4)


def test_mel_weight_matrix_matches_reference():
    from onnx.reference import ReferenceEvaluator
    m = one_node_model("MelWeightMatrix", {}, {"y": (F32, None)},
                       inits={"bins": np.array(8, np.int64), "dft": np.array(64, np.int64),
                              "sr": np.array(8000, np.int64),
                              "lo": np.array(0.0, np.float32), "hi": np.array(4000.0, np.float32)},
                       opset=17)
    np.testing.assert_allclose(torch_run(m, {})[0], ReferenceEvaluator(m).run(None, {})[0],
                               atol=1e-6)
