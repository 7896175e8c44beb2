"""Slice with step -1 over whole axes (torch.flip) -> Flip 0=axes; ScatterND of a run of rows
(slice_scatter) and any box of slice assignments -> Crop + Concat."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches, onnx_matches  # noqa: E402


@pytest.mark.parametrize("shape,axes", [((2, 3, 5), [0, 2]), ((1, 4, 6, 5), [1, -1]),
                                        ((7,), [0])])
def test_flip(tmp_path, shape, axes):
    big = np.iinfo(np.int64)
    k = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (
        ("s", [-1] * len(axes)), ("e", [big.min] * len(axes)), ("a", axes),
        ("t", [-1] * len(axes)))]
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    onnx_matches(tmp_path, [helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
                 {"x": x}, inits=k, layers=["Flip"])


@pytest.mark.parametrize("data,rows,upd", [((8, 4), [2, 3, 4], (3, 4)),
                                             ((3, 2, 5, 8), [1], (1, 2, 5, 8)),
                                             ((1, 3, 4), [0], (1, 3, 4))])
def test_scatter_nd_rows_is_concat(tmp_path, data, rows, upd):
    """slice_scatter as exported: ScatterND of consecutive rows of axis 0."""
    idx = numpy_helper.from_array(np.array(rows, np.int64).reshape(-1, 1), "i")
    rs = np.random.RandomState(0)
    feeds = {"x": rs.rand(*data).astype(np.float32), "u": rs.rand(*upd).astype(np.float32)}
    onnx_matches(tmp_path, [helper.make_node("Relu", ["x"], ["r"]),
                            helper.make_node("ScatterND", ["r", "i", "u"], ["y"])],
                 feeds, inits=[idx])


class SliceAssignments(nn.Module):
    """Slice assignment on several axes at once (ScatterND with the box's every index, as
    the TorchScript exporter writes it), a batch of 1 and of several, and one whole axis."""

    def forward(self, x, y, z, w):
        x, y, z, w = x.clone(), y.clone(), z.clone(), w.clone()
        x[..., 1] = x[..., -1] * 3
        x[:, :, 3, :2] = x[:, :, 3, :2].exp()
        y[..., -1, -5:-1] = y[..., -4, 1:5] - 11
        z[:, 1:2, :, :] = z[:, 0:1, :, :] + 1
        z[:, :, 1:5, 2:6] = z[:, :, 1:5, 7:11] * 2
        w[100:] = w[4:24] + 23
        return x, y, z, w


def test_scatter_nd_box(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(3, 4, 6, 5), torch.rand(2, 7, 9), torch.rand(1, 3, 6, 12),
            torch.rand(120))
    text = ncnn_matches(tmp_path, SliceAssignments(), args, layers=["Concat", "Crop"])
    assert {ln.split()[0] for ln in text.splitlines()[2:]} <= {
        "Input", "Split", "Crop", "Concat", "Reshape", "BinaryOp", "UnaryOp", "Noop"}


class GhostConcat(nn.Module):
    """GhostNet's module: two halves concatenated, then `[:, :out]`, which keeps every channel
    when `out` is even; a slice on the last axis to its end; and one that does cut."""

    def __init__(self):
        super().__init__()
        self.primary = nn.Conv2d(4, 8, 1)
        self.cheap = nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x):
        a = self.primary(x)
        y = torch.cat([a, self.cheap(a)], 1)[:, :16]
        return y[..., 0:], y[:, :, 1:, :5]


def test_slice_of_a_whole_axis_is_no_layer(tmp_path):
    """A Slice that keeps every element of each axis it names writes no Crop: ncnn would copy
    the blob (32 such copies in timm's GhostNet, where pnnx writes none)."""
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, GhostConcat(), (torch.rand(1, 4, 6, 7),), layers=["Crop"])
    crops = [ln for ln in text.splitlines() if ln.startswith("Crop")]
    assert len(crops) == 2, crops  # y[:, :, 1:, :5], which the exporter writes as two Slices


def test_slice_to_a_fixed_end_of_a_dynamic_axis_stays(tmp_path):
    """x[:, :3] on an axis whose size the model does not fix keeps its Crop even where the
    size at conversion is 3: another input may be longer."""
    import onnx
    from onnx import TensorProto

    from nnport.convert import convert
    from nnport.ncnn_emit.runner import NcnnRunner

    k = [numpy_helper.from_array(np.array(v, np.int64), n)
         for n, v in (("s", [0]), ("e", [3]), ("a", [1]))]
    g = helper.make_graph([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], k)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    convert(path, tmp_path / "m.param", verify=False, input_shapes={"x": (1, 3, 4)})
    text = (tmp_path / "m.param").read_text()
    assert any(ln.startswith("Crop") for ln in text.splitlines()), text
    x = np.random.RandomState(0).rand(1, 5, 4).astype(np.float32)
    got = NcnnRunner(tmp_path / "m.param").run({"x": x})[0]
    np.testing.assert_allclose(got.reshape(1, 3, 4), x[:, :3])


def test_whole_axis_slice_as_graph_output_keeps_its_name(tmp_path):
    """A graph output that is a no-op Slice of another blob is still written under its ONNX
    name (a Noop), the name a caller extracts (torch.diag's output in pnnx's suite)."""
    k = [numpy_helper.from_array(np.array(v, np.int64), n)
         for n, v in (("s", [0]), ("e", [6]), ("a", [1]))]
    x = np.random.RandomState(0).rand(2, 6).astype(np.float32)
    text = onnx_matches(tmp_path, [helper.make_node("Relu", ["x"], ["r"]),
                                   helper.make_node("Slice", ["r", "s", "e", "a"], ["y"])],
                        {"x": x}, inits=k)
    tops = {t for ln in text.splitlines()[2:] for t in ln.split()[4 + int(ln.split()[2]):][
        :int(ln.split()[3])]}
    assert "y" in tops, text
    assert not any(ln.startswith("Crop") for ln in text.splitlines()), text
