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


class ConstantAcrossTheBatch(nn.Module):
    """A (1, n) value against an (n, n) constant (``torch.diag`` of a vector): the row held as a
    dropped batch of 1 must come back whole, since the result has n rows."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.eye(6) > 0)
        self.register_buffer("scale", torch.arange(12.0).reshape(2, 6))

    def forward(self, v, w):
        return (torch.diag(v, -1), torch.where(self.mask, w.unsqueeze(0), 0.0),
                w.unsqueeze(0) * self.scale, self.scale - w.unsqueeze(0))


def test_constant_spanning_a_dropped_batch(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, ConstantAcrossTheBatch(), (torch.rand(5), torch.rand(6)),
                 layers=["BinaryOp"], dynamo=True)


class HigherRankConstant(nn.Module):
    """A (1, 1, n) constant plus a (1, n) value (an unrolled RNN's first step from a zero
    state): the result is rank 3, and the layers after it (a Linear of width 16, which ncnn
    packs) must see the blob as the shape the result declares."""

    def __init__(self):
        super().__init__()
        self.register_buffer("h0", torch.linspace(-1, 1, 16).reshape(1, 1, 16))
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        y = self.h0 + x
        return self.fc(torch.tanh(y)), y * 2


def test_constant_of_higher_rank(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, HigherRankConstant(), (torch.rand(1, 16),), layers=["BinaryOp"],
                 dynamo=True)


def test_unrolled_rnn_of_width_16(tmp_path):
    torch.manual_seed(0)

    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(16, 16)

        def forward(self, x):
            out, h = self.rnn(x)
            return out, h

    ncnn_matches(tmp_path, Last(), (torch.rand(5, 1, 16),), dynamo=True)
