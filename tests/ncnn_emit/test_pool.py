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
