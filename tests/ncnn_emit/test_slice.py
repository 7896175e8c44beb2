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
