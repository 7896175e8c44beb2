"""Comparisons, logic and Where on float masks (op_compare): hardshrink, softshrink,
softplus with a threshold, masked_fill with -inf, boolean logic."""
from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Compares(nn.Module):
    def forward(self, x, y):
        m = (x > 0.5) & ~(y <= 0.2) | (x == y)
        a = torch.where(m, x, y)
        b = x.masked_fill(y < 0.3, float("-inf")).softmax(-1)
        c = F.hardshrink(x - 0.5, 0.2) + F.softshrink(y - 0.5, 0.1)
        d = F.softplus(x * 3 - 1, beta=2)
        return a, b, c, d, (x >= y).float()


@pytest.mark.parametrize("shape", [(2, 16), (1, 3, 12, 16), (16,)])
def test_compare_and_where(tmp_path, shape):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Compares(), (torch.rand(*shape), torch.rand(*shape)),
                 layers=["Clip"])
