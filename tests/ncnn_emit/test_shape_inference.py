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

from nnport.convert import convert  # noqa: E402
from nnport.errors import NnportError  # noqa: E402
from nnport.ncnn_emit.runner import NcnnRunner  # noqa: E402


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
