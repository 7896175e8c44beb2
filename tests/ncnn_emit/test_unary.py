"""Unary math without one ncnn layer (Sign, hyperbolic functions, Softsign) and the one-layer
ones added with them (CELU, Erf, CumulativeSum)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches, onnx_matches  # noqa: E402


class Unary(nn.Module):
    def forward(self, x):
        return (torch.sign(x - 0.5 * (x > 0).float()), F.softsign(x),
                F.celu(x, alpha=0.7), torch.erf(x), torch.cumsum(x, dim=-1),
                torch.cumsum(x, dim=0))


@pytest.mark.parametrize("shape", [(3, 12, 16), (1, 5, 7), (2, 16)])
def test_unary_math(tmp_path, shape):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Unary(), (torch.rand(*shape) * 2 - 1,),
                 layers=["CELU", "Erf", "CumulativeSum"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("op", ["Sinh", "Cosh", "Asinh", "Acosh", "Atanh"])
def test_hyperbolic(tmp_path, op):
    import numpy as np
    from onnx import helper

    x = np.random.RandomState(0).uniform(-0.9, 0.9, (2, 3, 5)).astype(np.float32)
    if op == "Acosh":
        x = np.abs(x) + 1.2
    onnx_matches(tmp_path, [helper.make_node(op, ["x"], ["y"])], {"x": x}, rtol=1e-3)


class PReLUs(nn.Module):
    """Per-channel PReLU on batches held whole (ncnn's PReLU slopes the outermost axis), one
    with as many samples as channels."""

    def __init__(self):
        super().__init__()
        self.w5 = nn.Parameter(torch.linspace(-1, 1, 5))
        self.w3 = nn.Parameter(torch.tensor([0.1, -0.5, 2.0]))

    def forward(self, a, b, c):
        import torch.nn.functional as F

        return F.prelu(a, self.w5), F.prelu(b, self.w3), F.prelu(c, self.w5)


def test_prelu_on_a_batch_held_whole(tmp_path):
    torch.manual_seed(0)
    args = (torch.randn(2, 5, 7, 9), torch.randn(3, 3, 4), torch.randn(4, 5))
    ncnn_matches(tmp_path, PReLUs(), args, layers=["PReLU"], dynamo=True)
