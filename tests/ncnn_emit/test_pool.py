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
