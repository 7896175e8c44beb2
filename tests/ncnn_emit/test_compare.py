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


class Atan2(nn.Module):
    def forward(self, y, x):
        return torch.atan2(y, x), torch.isnan(x).float()


@pytest.mark.parametrize("shape", [(3, 16), (2, 3, 5, 7)])
def test_isnan_has_no_exact_ncnn_form_and_says_why(tmp_path, shape):
    """dynamo writes atan2 as Atan(y / x) with quadrant fixes and Where(IsNaN(r), 0, r); that
    is not ncnn's atan2 (it gives -pi at y = +0, x < 0, and 0 where x or y is NaN or both are
    infinite), and IsNaN itself has no exact ncnn form, so the pre-flight names each IsNaN
    with the reason."""
    from nnport.errors import UnsupportedOpsError

    args = (torch.rand(*shape), torch.rand(*shape))
    with pytest.raises(UnsupportedOpsError,
                       match=r"ai.onnx::IsNaN \(opset \d+\) at '[^']+', '[^']+': ncnn has no "
                             r"compare layer, and no chain of its float layers marks a NaN "
                             r"exactly"):
        ncnn_matches(tmp_path, Atan2(), args, dynamo=True)
