"""int8 QDQ models (onnxruntime's quantize_static) -> ncnn int8 layers or the float32 path.

Each case builds a float model in plain torch, exports it, quantizes it with a calibration
reader (QDQ format), converts it with nnport, runs the .param in the real ncnn package and
compares with onnxruntime running the QDQ model.  The tolerance is the project's
quantization-step rule (``nnport.verify.quant``): two correct int8 implementations may
differ by one step of the output's quantization, nothing more.
"""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")
ort = pytest.importorskip("onnxruntime")
q = pytest.importorskip("onnxruntime.quantization")

from nnport.convert import convert  # noqa: E402
from nnport.ncnn_emit.runner import NcnnRunner  # noqa: E402
from nnport.ncnn_emit.serializer import INT8_TAG  # noqa: E402
from nnport.verify.quant import quant_steps  # noqa: E402


class ConvNet(nn.Module):
    def __init__(self, groups=1):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.gc = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=groups)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        y = y + torch.relu(self.dw(y))  # residual: a dequantized tensor read by Add too
        y = torch.relu(self.gc(y))
        y = self.pw(y).mean((2, 3))
        return self.fc(y)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class _Reader(q.CalibrationDataReader):
    def __init__(self, shape, n=6, seed=0):
        rng = np.random.default_rng(seed)
        self.it = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.it, None)


def _qdq(tmp_path, module, shape, *, per_channel=True, act=None, symmetric=True):
    """The module exported and quantized: QDQ format, int8 weights; activations int8
    symmetric unless ``act``/``symmetric`` say otherwise."""
    torch.manual_seed(0)
    f = tmp_path / "float.onnx"
    torch.onnx.export(module.eval(), torch.randn(*shape), str(f), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    out = tmp_path / "qdq.onnx"
    q.quantize_static(str(f), str(out), _Reader(shape), quant_format=q.QuantFormat.QDQ,
                      per_channel=per_channel, weight_type=q.QuantType.QInt8,
                      activation_type=act or q.QuantType.QInt8,
                      extra_options={"ActivationSymmetric": symmetric})
    return out


def _convert_and_compare(tmp_path, qdq, shape, scales=(1.0, 1.0, 1.0), **kw):
    """Convert, then compare ncnn with onnxruntime on inputs of the calibration data's
    distribution times ``scales``, within one quantization step of the output.  Returns
    (param text, notes, worst difference in steps).

    Beyond the calibrated range an int8 layer's input saturates at -127 in ncnn and -128 in
    onnxruntime (ncnn's int8 is symmetric): the float32 path is compared there too.
    onnxruntime runs at its basic optimization level, as ``verify`` runs a QDQ model: it then
    computes the graph as ONNX defines it.  Its fused int8 kernels (the extended level) differ
    from that by up to two steps on the encoder below, and by 12 to 29 steps on the MLP on an
    x86 CPU without VNNI, where they sum u8·s8 products in saturating int16."""
    res = convert(qdq, tmp_path / "m.param", verify=False, **kw)
    runner = NcnnRunner(tmp_path / "m.param")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(str(qdq), so, providers=["CPUExecutionProvider"])
    step = quant_steps(str(qdq))["y"].step
    worst = 0.0
    rng = np.random.default_rng(1)
    for scale in scales:
        x = (rng.standard_normal(shape) * scale).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = runner.run({"x": x})[0].reshape(want.shape)
        assert np.abs(want).max() > 10 * step  # the output is not all zero or saturated
        worst = max(worst, float(np.abs(got - want).max()) / step)
    assert worst <= 1.0 + 1e-3, f"ncnn differs from onnxruntime by {worst:.3g} steps"
    return (tmp_path / "m.param").read_text(), res.notes, worst


def _layers(text):
    """[(type, {key: value})] of a .param text."""
    out = []
    for line in text.splitlines()[2:]:
        parts = line.split()
        nb, nt = int(parts[2]), int(parts[3])
        params = dict(p.split("=", 1) for p in parts[4 + nb + nt:])
        out.append((parts[0], params))
    return out


def _int8_layers(text):
    return sorted(t for t, p in _layers(text) if p.get("8") == "1")


def _int8_blobs(bin_path) -> int:
    data = np.fromfile(bin_path, dtype="<u4")
    return int(np.sum(data == INT8_TAG))


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_convnet_int8(tmp_path, per_channel):
    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(), shape, per_channel=per_channel)
    text, notes, _ = _convert_and_compare(tmp_path, qdq, shape)
    assert _int8_layers(text) == ["Convolution"] * 3 + ["ConvolutionDepthWise", "InnerProduct"]
    assert _int8_blobs(tmp_path / "m.bin") == 5  # the weights are stored as int8
    # Conv -> Q -> DQ -> Relu -> Q -> DQ at one scale: the first pair's rounding is the
    # second's, so the ReLU fuses into the int8 layer (9=activation_type 1)
    convs = [p for t, p in _layers(text) if t.startswith("Convolution") and p.get("8") == "1"]
    assert [p.get("9") for p in convs] == ["1", "1", "1", None], convs
    assert any("5 layer(s) run in int8" in n for n in notes), notes
    assert not any("float32" in n for n in notes), notes


def test_int8_weights_and_scales_in_bin(tmp_path):
    """The .bin of an int8 Convolution holds the ONNX int8 weight and ncnn's scales, which
    are the reciprocals of ONNX's."""
    import onnx
    from onnx import numpy_helper

    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(), shape)
    convert(qdq, tmp_path / "m.param", verify=False)
    m = onnx.load(str(qdq))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    wq = inits["c1.weight_quantized"]
    ws = inits["c1.weight_scale"]
    xs = [inits[n.input[1]] for n in m.graph.node
          if n.op_type == "DequantizeLinear" and n.input[0] == "x_QuantizeLinear_Output"][0]
    raw = (tmp_path / "m.bin").read_bytes()
    # the first layer's weights come first: tag, 216 int8 values padded to 4, 8 bias floats,
    # 8 weight scales, 1 input scale
    assert struct.unpack_from("<I", raw, 0)[0] == INT8_TAG
    got_w = np.frombuffer(raw, np.int8, wq.size, 4)
    np.testing.assert_array_equal(got_w, wq.ravel())
    off = 4 + (wq.size + 3) // 4 * 4 + 8 * 4
    got_ws = np.frombuffer(raw, "<f4", 8, off)
    got_xs = np.frombuffer(raw, "<f4", 1, off + 32)
    np.testing.assert_allclose(got_ws, 1.0 / ws, rtol=1e-6)
    np.testing.assert_allclose(got_xs, 1.0 / xs.ravel(), rtol=1e-6)


def test_grouped_scales_fall_back_per_layer(tmp_path):
    """A grouped convolution (2 groups of 4 outputs) with a scale per output channel: ncnn's
    grouped int8 layer has one scale per group, so that layer runs in float32 and says why;
    the others stay int8."""
    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(groups=2), shape)
    text, notes, _ = _convert_and_compare(tmp_path, qdq, shape)
    assert _int8_layers(text) == ["Convolution", "Convolution", "ConvolutionDepthWise",
                                  "InnerProduct"]
    assert any("'/gc/Conv'" in n and "one scale per group" in n for n in notes), notes


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(4, 8, 3, padding=1), nn.Conv1d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x)))


def test_conv1d_float32_path(tmp_path):
    """ncnn has no int8 Convolution1D: those layers run in float32 and say so."""
    shape = (1, 4, 20)
    qdq = _qdq(tmp_path, Conv1dNet(), shape)
    text, notes, _ = _convert_and_compare(tmp_path, qdq, shape)
    assert _int8_layers(text) == []
    assert any("2 quantized layer(s) run in float32" in n and "no int8 Convolution1D" in n
               for n in notes), notes


@pytest.mark.parametrize("act,symmetric,why", [
    ("QUInt8", False, "quantized to uint8"),
    ("QInt8", False, "zero point is not 0"),
], ids=["uint8_asymmetric", "int8_asymmetric"])
def test_asymmetric_activations_float32_path(tmp_path, act, symmetric, why):
    """Activations with a zero point (onnxruntime's default QUInt8): ncnn's int8 is symmetric,
    so every layer runs in float32 with dequantized weights and exact fake quantization."""
    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(), shape, act=getattr(q.QuantType, act), symmetric=symmetric)
    text, notes, _ = _convert_and_compare(tmp_path, qdq, shape, scales=(1.0, 1.0, 3.0))
    assert _int8_layers(text) == []
    assert _int8_blobs(tmp_path / "m.bin") == 0
    assert any("5 quantized layer(s) run in float32" in n and why in n for n in notes), notes


def test_fake_quant_is_not_dropped(tmp_path):
    """The float32 path computes QuantizeLinear's rounding and saturation: with the pairs left
    out, inputs beyond the calibrated range miss onnxruntime by many steps."""
    from nnport.ncnn_emit.ops import op_quant

    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(), shape, act=q.QuantType.QUInt8, symmetric=False)
    _convert_and_compare(tmp_path, qdq, shape, scales=(3.0,))
    saved = op_quant.emit_fake_quant

    def dropped(ctx, dq, y):  # the pair as an alias of its float input
        x = dq.inputs[0].producer().inputs[0]
        ctx.alias(y, ctx.blob(x), ctx.drop(x))

    op_quant.emit_fake_quant = dropped
    try:
        with pytest.raises(AssertionError, match="steps"):
            _convert_and_compare(tmp_path, qdq, shape, scales=(3.0,))
    finally:
        op_quant.emit_fake_quant = saved


@pytest.mark.parametrize("shape", [(1, 16), (4, 16), (1, 6, 16)],
                         ids=["vector", "rows", "tokens"])
def test_mlp_int8(tmp_path, shape):
    """Gemm (2-D input) and MatMul + Add (3-D tokens) -> int8 InnerProduct, also on 2-D rows."""
    qdq = _qdq(tmp_path, MLP(), shape)
    text, _, _ = _convert_and_compare(tmp_path, qdq, shape)
    assert _int8_layers(text) == ["InnerProduct", "InnerProduct"]
    assert _int8_blobs(tmp_path / "m.bin") == 2


@pytest.mark.parametrize("symmetric", [True, False], ids=["int8", "uint8_asymmetric"])
def test_encoder_matches_the_qdq_definition(tmp_path, symmetric):
    """A transformer block (LayerNorm, softmax attention, GELU): its q/k/v/o and feed-forward
    products run as int8 InnerProduct (symmetric int8) or in float32, the attention's
    activation products in float32.  Compared with onnxruntime computing the QDQ graph as
    ONNX defines it: onnxruntime's own fused int8 kernels differ from that by up to two output
    steps on this model (and so from ncnn), which is onnxruntime's rounding, not ncnn's."""
    from .models import Encoder

    shape = (1, 8, 32)
    qdq = _qdq(tmp_path, Encoder(), shape, act=None if symmetric else q.QuantType.QUInt8,
               symmetric=symmetric)
    text, notes, _ = _convert_and_compare(tmp_path, qdq, shape)
    assert _int8_layers(text) == (["InnerProduct"] * 6 if symmetric else [])
    assert any("'/MatMul' (MatMul): both operands are computed at run time" in n
               for n in notes), notes


def test_fp16_keeps_int8_weights(tmp_path):
    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(), shape)
    res = convert(qdq, tmp_path / "m.param", fp16=True, verify=True)
    assert res.ok, res.report
    assert _int8_blobs(tmp_path / "m.bin") == 5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "nnport.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_convert_and_verify(tmp_path):
    shape = (1, 3, 16, 16)
    qdq = _qdq(tmp_path, ConvNet(), shape)
    r = _cli("convert", qdq, tmp_path / "m.param")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "note: int8: 5 layer(s) run in int8" in r.stdout
    assert "MATCH" in r.stdout
    r = _cli("verify", qdq, tmp_path / "m.param")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MATCH" in r.stdout and "MISMATCH" not in r.stdout


def _bad_model(path, nodes, inputs, outputs, inits=()):
    import onnx
    from onnx import helper

    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _assert_one_line(r, tmp_path, *words):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not list(tmp_path.glob("*.param")) and not list(tmp_path.glob("*.bin"))


def test_bad_integer_input(tmp_path):
    """An int8 graph input dequantized: ncnn's blobs are float."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    src = _bad_model(tmp_path / "m.onnx", [
        helper.make_node("DequantizeLinear", ["x", "s"], ["d"], name="dq_in"),
        helper.make_node("Relu", ["d"], ["y"])], [x], [y],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])])
    _assert_one_line(_cli("convert", src, tmp_path / "m.param", "--no-verify"), tmp_path,
                     "'dq_in'", "DequantizeLinear", "QuantizeLinear")


def test_bad_quantized_output(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4])
    src = _bad_model(tmp_path / "m.onnx", [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["y"], name="q_out")], [x], [y],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
         helper.make_tensor("z", TensorProto.INT8, [], [0])])
    _assert_one_line(_cli("convert", src, tmp_path / "m.param", "--no-verify"), tmp_path,
                     "'q_out'", "QuantizeLinear", "integer")


def test_bad_requantization(tmp_path):
    """QuantizeLinear then DequantizeLinear with another scale is a requantization."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    src = _bad_model(tmp_path / "m.onnx", [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q1"),
        helper.make_node("DequantizeLinear", ["q", "s2", "z"], ["d"], name="dq2"),
        helper.make_node("Relu", ["d"], ["y"])], [x], [y],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
         helper.make_tensor("s2", TensorProto.FLOAT, [], [0.2]),
         helper.make_tensor("z", TensorProto.INT8, [], [0])])
    _assert_one_line(_cli("convert", src, tmp_path / "m.param", "--no-verify"), tmp_path,
                     "'dq2'", "requantization")


def test_inspect_lists_qdq_problems_before_converting(tmp_path):
    """``nnport inspect --target ncnn`` names every QuantizeLinear/DequantizeLinear that ncnn
    cannot hold, with the reason, and passes a quantize_static model."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4])
    src = _bad_model(tmp_path / "m.onnx", [
        helper.make_node("DequantizeLinear", ["x", "s"], ["d"], name="dq_in"),
        helper.make_node("Relu", ["d"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["y"], name="q_out")], [x], [y],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
         helper.make_tensor("z", TensorProto.INT8, [], [0])])
    r = _cli("inspect", "--target", "ncnn", src)
    assert "cannot convert to ncnn: 2 node(s)" in r.stdout, r.stdout + r.stderr
    assert "'dq_in' (it dequantizes an integer tensor" in r.stdout
    assert "'q_out' (its quantized (integer) output is a graph output" in r.stdout
    qdq = _qdq(tmp_path, MLP(), (1, 16))
    r = _cli("inspect", "--target", "ncnn", qdq)
    assert "pre-flight for ncnn: every node converts" in r.stdout, r.stdout + r.stderr
