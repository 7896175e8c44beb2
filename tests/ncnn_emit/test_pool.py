"""MaxPool/AveragePool/Global*Pool -> Pooling*: a batch other than 1 is held whole and
pooled as (N*C, spatial...) channels."""
from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Pools(nn.Module):
    def forward(self, x, q):
        x = F.avg_pool2d(x, kernel_size=(4, 5), stride=(1, 2), padding=(1, 2), ceil_mode=True,
                         count_include_pad=False)
        q = F.max_pool1d(q, 3, stride=2, padding=1)
        return x, F.adaptive_avg_pool2d(x, 1), q


def test_pool_on_a_batch_of_several(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Pools(), (torch.rand(2, 3, 16, 18), torch.rand(3, 4, 17)),
                 layers=["Pooling", "Pooling1D"])


class CeilPoolThenReshape(nn.Module):
    """ceil_mode pooling whose last window would start in the end padding (k=2 s=3 p=1 on 8:
    torch and onnxruntime give 3 columns, onnx's shape inference before opset 22 gives 4),
    followed by ops whose ncnn params come from the shape."""

    def forward(self, x):
        y = F.max_pool2d(x, 2, 3, 1, ceil_mode=True)
        z = F.avg_pool2d(x, 2, 3, 1, ceil_mode=True)
        return y.reshape(1, 3, -1).softmax(-1), (z + y).flatten(2)


def test_ceil_mode_pool_shape(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, CeilPoolThenReshape(), (torch.rand(1, 3, 9, 8),),
                 layers=["Pooling", "Reshape"])


class CountPads(nn.Module):
    """Averages that count the pads, 1-D to 3-D: windows within input + pads are ncnn's own
    count-the-pads mode (6=1, no Padding layer); a ceil-mode window reaching past the pads
    (k=3 s=2 p=1 on 8: the last one) keeps the explicit Padding, since ncnn would count the
    part beyond the pads too."""

    def forward(self, a, b, c):
        return (F.avg_pool1d(a, 3, 2, 1, count_include_pad=True),
                F.avg_pool2d(b, 3, 2, 1, count_include_pad=True),
                F.avg_pool3d(c, 3, 2, 1, count_include_pad=True),
                F.avg_pool2d(b, 3, 2, 1, ceil_mode=True, count_include_pad=True))


def test_count_include_pad_without_a_padding_layer(tmp_path):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, CountPads(), (torch.rand(1, 3, 9), torch.rand(1, 3, 9, 8),
                                                torch.rand(1, 2, 5, 7, 6)),
                        layers=["Pooling1D", "Pooling", "Pooling3D"])
    lines = [ln.split() for ln in text.splitlines()[2:]]
    counted = [ln for ln in lines if ln[0].startswith("Pooling") and "6=1" in ln]
    assert len(counted) == 3, counted
    assert sum(ln[0] == "Padding" for ln in lines) == 1  # the ceil-mode one only
