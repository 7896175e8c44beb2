"""Converting to ncnn needs no runtime: shapes come from ONNX shape inference and the
reference evaluation of shape arithmetic.  A runtime is needed only to verify, and its failure
names it."""
from __future__ import annotations

import sys

import numpy as np
import onnx
import onnx.helper as h
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("ncnn")

from nnport.convert import convert, prepare  # noqa: E402
from nnport.errors import NnportError  # noqa: E402
from nnport.ncnn_emit.legalize.probe import Probe  # noqa: E402
from nnport.ncnn_emit.runner import NcnnRunner  # noqa: E402
from nnport.verify.inputs import specs_from_model  # noqa: E402


def _same_upper_dilated(path):
    """A convolution onnxruntime refuses to run (SAME_UPPER padding with dilation)."""
    W = np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32)
    g = h.make_graph(
        [h.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", dilations=[2, 2])], "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 10, 9])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(W, "w")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return W


def test_converts_without_onnxruntime(tmp_path, monkeypatch):
    W = _same_upper_dilated(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    convert(tmp_path / "m.onnx", tmp_path / "m.param", verify=False)
    x = np.random.RandomState(1).randn(1, 3, 10, 9).astype(np.float32)
    got = NcnnRunner(tmp_path / "m.param").run({"x": x})[0]
    # SAME_UPPER, stride 1: the dilated kernel spans 5, so 2 on each side
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(W), padding=2, dilation=2).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_verification_names_the_runtime_that_failed(tmp_path):
    pytest.importorskip("onnxruntime")
    _same_upper_dilated(tmp_path / "m.onnx")
    with pytest.raises(NnportError, match="onnxruntime") as e:
        convert(tmp_path / "m.onnx", tmp_path / "m.param")
    assert "Dilation" in str(e.value) or "dilation" in str(e.value)


def test_dynamic_reshape_follows_the_input_without_onnxruntime(tmp_path, monkeypatch):
    """Shape arithmetic (Shape -> Gather -> Concat -> Reshape) of a dynamic input is evaluated
    at two sizes, so the size-dependent dim is written as -1 and any size runs."""

    class Net(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x.reshape(x.shape[0], x.shape[1], -1) * 2)

    path = tmp_path / "m.onnx"
    torch.onnx.export(Net(), (torch.randn(1, 4, 6, 5),), str(path), input_names=["x"],
                      dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    convert(path, tmp_path / "m.param", verify=False, input_shapes={"x": (1, 4, 6, 5)})
    run = NcnnRunner(tmp_path / "m.param")
    for shape in ((1, 4, 6, 5), (1, 4, 3, 7)):
        x = np.random.RandomState(2).randn(*shape).astype(np.float32)
        got = run.run({"x": x})[0]
        want = Net()(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("const_inputs", [True, False])
def test_a_node_shape_inference_rejects_is_named_with_the_reason(tmp_path, const_inputs):
    """An invalid node (a Concat of a rank-2 and a rank-1 tensor, as dynamo writes for an
    LSTM with proj_size) leaves its output without a shape; the failure names that node and
    what ONNX shape inference says of it, also where a later node is the first to ask."""
    a, b = np.ones((4, 3), np.float32), np.ones((4,), np.float32)
    inits = [onnx.numpy_helper.from_array(a, "a"), onnx.numpy_helper.from_array(b, "b")]
    ins = [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])]
    if not const_inputs:
        inits = inits[1:]
        ins += [h.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [4, 3])]
    g = h.make_graph(
        [h.make_node("Concat", ["a", "b"], ["c"], axis=0, name="bad_cat"),
         h.make_node("Unsqueeze", ["c", "ax"], ["u"], name="unsq"),
         h.make_node("Add", ["x", "u"], ["y"], name="add")], "g", ins,
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        inits + [onnx.numpy_helper.from_array(np.array([0], np.int64), "ax")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), tmp_path / "m.onnx")
    with pytest.raises(NnportError, match="node 'bad_cat' \\(Concat\\): the model is invalid "
                       "here, ONNX shape inference rejects this node: .*must have same rank"):
        convert(tmp_path / "m.onnx", tmp_path / "m.param", verify=False)
    # what follows it has no shape for the same reason
    model = prepare(tmp_path / "m.onnx", infer_shapes=False)
    probe = Probe(model, specs_from_model(model), None)
    assert "y" not in probe.shape and probe.rejected["y"][:2] == ("bad_cat", "Concat")
