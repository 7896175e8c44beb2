"""Models from onnxruntime's quantization tool: QDQ (static) and dynamic (MatMulInteger)."""
import numpy as np
import onnx
import pytest
import torch

import nnport


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("q") / "fp32.onnx"
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), str(p), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"])
    return p


class _Reader:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.data = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
                          for _ in range(8)])

    def get_next(self):
        return next(self.data, None)


def test_static_qdq_model(fp32_model, tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    out = tmp_path / "qdq.onnx"
    quantize_static(str(fp32_model), str(out), _Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    module = nnport.to_torch(out)
    rep = nnport.verify(out, module)  # default fp32 tolerance: the quantization math is exact
    assert rep.ok, rep.lines()


def test_dynamic_quantized_model(fp32_model, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = tmp_path / "dyn.onnx"
    quantize_dynamic(str(fp32_model), str(out), weight_type=QuantType.QUInt8)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear", "ConvInteger"}, ops
    rep = nnport.verify(out, nnport.to_torch(out))
    assert rep.ok, rep.lines()
