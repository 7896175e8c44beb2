"""Pow by a constant 2, 0.5, -0.5 or -1 is one UnaryOp: ncnn's vectorized pow is
exp(k * log(x)), NaN for negative x (the x ** 2 of RMSNorm in Qwen3 attention)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class RMSNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6), 1.0 / x, x.abs() ** 0.5


def test_pow_of_negative_values(tmp_path):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, RMSNorm(), (torch.randn(1, 16, 24),), layers=["UnaryOp"],
                        rtol=1e-3, atol=1e-4)
    assert "0=6 1=1" not in text  # no BinaryOp pow with a scalar
