"""Quantization ops against onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto

from nnport.convert import generate_torch
from util import F32, S8_EXACT, assert_matches_ort, one_node_model, ort_run, torch_run

U8, I8, I32 = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
RNG = np.random.default_rng(0)


def _x(*shape, scale=3.0):
    x = (RNG.standard_normal(shape) * scale).astype(np.float32)
    x.reshape(-1)[:4] = [0.5, 1.5, -2.5, 1000.0]  # ties round to even; saturation
    return x


def test_quantize_per_tensor_literals():
    m = one_node_model("QuantizeLinear", {"x": (F32, [2, 5])}, {"y": (U8, None)},
                       inits={"s": np.array(0.5, np.float32), "zp": np.array(3, np.uint8)},
                       opset=13)
    src = generate_torch(m)[0]
    assert "torch.clamp(torch.round(x / 0.5) + 3, 0, 255).to(torch.uint8)" in src
    assert "quantize_per_tensor" not in src
    assert_matches_ort(m, {"x": _x(2, 5, scale=1)})


def test_quantize_opset10_default_uint8():
    m = one_node_model("QuantizeLinear", {"x": (F32, [8])}, {"y": (U8, None)},
                       inits={"s": np.array(0.1, np.float32)}, opset=10)
    assert_matches_ort(m, {"x": _x(8)})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_dequantize_per_axis(axis):
    shape = [3, 4, 5]
    n = shape[axis]
    s = RNG.uniform(0.01, 0.2, n).astype(np.float32)
    zp = RNG.integers(-10, 10, n).astype(np.int8)
    m = one_node_model("QuantizeLinear", {"x": (F32, shape)}, {"y": (I8, None)},
                       {"axis": axis}, inits={"s": s, "zp": zp}, opset=13)
    assert_matches_ort(m, {"x": _x(*shape)})
    m = one_node_model("DequantizeLinear", {"q": (I8, shape)}, {"y": (F32, None)},
                       {"axis": axis}, inits={"s": s, "zp": zp}, opset=13)
    assert_matches_ort(m, {"q": RNG.integers(-128, 127, shape).astype(np.int8)})


@pytest.mark.parametrize("qtype,np_t", [(TensorProto.INT16, np.int16),
                                        (TensorProto.UINT16, np.uint16)])
def test_quantize_blocked_16bit(qtype, np_t):
    s = RNG.uniform(0.001, 0.01, (4, 2)).astype(np.float32)  # blocks of 3 over 5 columns
    zp = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np_t)
    m = one_node_model("QuantizeLinear", {"x": (F32, [4, 5])}, {"y": (qtype, None)},
                       {"axis": 1, "block_size": 3}, inits={"s": s, "zp": zp}, opset=21)
    src = generate_torch(m)[0]
    assert "repeat_interleave(3, dim=1)" in src
    assert_matches_ort(m, {"x": _x(4, 5, scale=100)})


def test_dequantize_int32_and_float16_scale():
    m = one_node_model("DequantizeLinear", {"q": (I32, [6])}, {"y": (F32, None)},
                       inits={"s": np.array(0.25, np.float32)}, opset=10)
    assert_matches_ort(m, {"q": np.array([-7, 0, 3, 100000, 5, -1], np.int32)})
    m = one_node_model("DequantizeLinear", {"q": (U8, [2, 3])},
                       {"y": (TensorProto.FLOAT16, None)},
                       inits={"s": np.array(0.125, np.float16), "zp": np.array(9, np.uint8)},
                       opset=19)
    assert_matches_ort(m, {"q": np.array([[0, 9, 255], [1, 2, 200]], np.uint8)})


@pytest.mark.parametrize("saturate", [1, 0])
def test_quantize_float8(saturate):
    import ml_dtypes  # noqa: F401

    m = one_node_model("QuantizeLinear", {"x": (F32, [6])},
                       {"y": (TensorProto.FLOAT8E4M3FN, None)}, {"saturate": saturate},
                       inits={"s": np.array(2.0, np.float32),
                              "zp": np.zeros((), dtype="float8_e4m3fn")}, opset=19)
    x = np.array([0.1, -3.3, 17.0, 1000.0 if saturate else 700.0, -5000.0 if saturate else 1.0,
                  0.0], np.float32)
    ref = ort_run(m, {"x": x})[0]  # onnxruntime hands float8 back as raw uint8 bits
    got = torch_run(m, {"x": x})[0]
    assert got.dtype.name == "float8_e4m3fn"
    np.testing.assert_array_equal(got.view(np.uint8), ref.view(np.uint8))


def test_dynamic_quantize_linear():
    m = one_node_model("DynamicQuantizeLinear", {"x": (F32, [3, 4])},
                       {"y": (U8, None), "s": (F32, None), "zp": (U8, None)}, opset=11)
    assert "_dynamic_quantize_linear(x)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": _x(3, 4)})
    assert_matches_ort(m, {"x": np.abs(_x(3, 4)) + 1})


def test_matmul_integer():
    a = RNG.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    b = RNG.integers(-128, 127, (4, 5)).astype(np.int8)
    m = one_node_model("MatMulInteger", {"a": (U8, [2, 3, 4])}, {"y": (I32, None)},
                       inits={"b": b, "azp": np.array(12, np.uint8),
                              "bzp": RNG.integers(-5, 5, 5).astype(np.int8)}, opset=10)
    assert_matches_ort(m, {"a": a})


@pytest.mark.parametrize("pads", [[1, 1, 1, 1], [0, 1, 2, 0]])
def test_conv_integer(pads):
    w = RNG.integers(0, 255, (4, 3, 3, 3)).astype(np.uint8)
    m = one_node_model("ConvInteger", {"x": (U8, [1, 3, 6, 7])}, {"y": (I32, None)},
                       {"pads": pads, "strides": [1, 2]},
                       inits={"w": w, "xzp": np.array(100, np.uint8),
                              "wzp": np.array(128, np.uint8)}, opset=10)
    assert "F.conv2d(" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": RNG.integers(0, 255, (1, 3, 6, 7)).astype(np.uint8)})


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER"])
def test_qlinear_conv_per_channel(auto_pad):
    w = RNG.integers(*S8_EXACT, (4, 2, 3, 3)).astype(np.int8)
    inits = {"x_s": np.array(0.05, np.float32), "x_zp": np.array(7, np.uint8), "w": w,
             "w_s": RNG.uniform(0.001, 0.01, 4).astype(np.float32),
             "w_zp": np.zeros(4, np.int8), "y_s": np.array(0.1, np.float32),
             "y_zp": np.array(120, np.uint8),
             "B": RNG.integers(-500, 500, 4).astype(np.int32)}
    attrs = {"group": 2, "auto_pad": auto_pad}
    if auto_pad == "NOTSET":
        attrs["pads"] = [1, 0, 1, 2]
    node_inputs = {"x": (U8, [1, 4, 6, 6])}
    m = one_node_model("QLinearConv", node_inputs, {"y": (U8, None)}, attrs, inits=inits,
                       opset=10)
    # one_node_model puts inputs then initializers in order: x, x_s, x_zp, w, w_s, ...
    assert_matches_ort(m, {"x": RNG.integers(0, 255, (1, 4, 6, 6)).astype(np.uint8)})


@pytest.mark.parametrize("opset", [10, 21])
def test_qlinear_matmul(opset):
    inits = {"a_s": np.array(0.02, np.float32), "a_zp": np.array(-3, np.int8),
             "b": RNG.integers(-128, 127, (6, 5)).astype(np.int8),
             "b_s": np.array(0.03, np.float32), "b_zp": np.array(2, np.int8),
             "y_s": np.array(0.05, np.float32), "y_zp": np.array(-10, np.int8)}
    m = one_node_model("QLinearMatMul", {"a": (I8, [3, 6])}, {"y": (I8, None)}, inits=inits,
                       opset=opset)
    assert_matches_ort(m, {"a": RNG.integers(-128, 127, (3, 6)).astype(np.int8)})
