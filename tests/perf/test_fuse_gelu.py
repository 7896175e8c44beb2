"""Exporters write GELU out as Div/Erf/Add/Mul/Mul; the generated code says F.gelu."""
import numpy as np
import pytest
import torch

from nnport.convert import generate_torch
from util import assert_matches_ort


class Net(torch.nn.Module):
    def __init__(self, approx="none"):
        super().__init__()
        self.fc = torch.nn.Linear(8, 16)
        self.approx = approx

    def forward(self, x):
        return torch.nn.functional.gelu(self.fc(x), approximate=self.approx) * 2.0


def _export(tmp_path, net, opset):
    import onnx

    p = tmp_path / "m.onnx"
    torch.onnx.export(net, (torch.randn(2, 8),), str(p), dynamo=False, opset_version=opset,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}})
    return onnx.load(str(p))


@pytest.mark.parametrize("opset", [13, 17])
def test_erf_gelu_becomes_f_gelu(tmp_path, opset):
    model = _export(tmp_path, Net(), opset)
    assert "Erf" in {n.op_type for n in model.graph.node}
    src = generate_torch(model)[0]
    assert "F.gelu(" in src and "torch.erf" not in src, src
    assert_matches_ort(model, {"x": np.random.randn(5, 8).astype(np.float32)})


def test_partial_pattern_is_left_alone(tmp_path):
    """erf(x / sqrt2) + 1 used elsewhere too: not a GELU, nothing fused."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = {"s2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}
    nodes = [helper.make_node("Div", ["x", "s2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]),
                           helper.make_tensor_value_info("a", TensorProto.FLOAT, [4])],
                          [numpy_helper.from_array(np.array(v), k) for k, v in c.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    src = generate_torch(model)[0]
    assert "F.gelu(" not in src and "torch.erf" in src
    assert_matches_ort(model, {"x": np.linspace(-3, 3, 4).astype(np.float32)})


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):  # 3-D input: exporters write MatMul + Add
        return self.fc2(torch.relu(self.fc1(x)))


def test_matmul_add_becomes_nn_linear(tmp_path):
    import onnx

    p = tmp_path / "mlp.onnx"
    torch.onnx.export(Mlp(), (torch.randn(2, 3, 8),), str(p), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b", 1: "t"}})
    model = onnx.load(str(p))
    assert "MatMul" in {n.op_type for n in model.graph.node}
    src = generate_torch(model)[0]
    assert "self.fc1 = nn.Linear(8, 16)" in src and "self.fc2 = nn.Linear(16, 4)" in src, src
    assert " @ " not in src
    for shape in [(2, 3, 8), (1, 7, 8)]:
        assert_matches_ort(model, {"x": np.random.randn(*shape).astype(np.float32)})
