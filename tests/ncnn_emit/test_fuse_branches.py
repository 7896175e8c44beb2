"""Parallel convolution branches of one input, summed (RepVGG, MobileOne, ACNet), become one
ncnn convolution: the kernels added up, each zero-padded to the largest where its taps fall, a
BatchNorm or the input itself as a centre tap.  Branches that do not line up stay apart, with
the same numbers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


def _bn(c):
    bn = nn.BatchNorm2d(c)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 1.5)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    return bn


def _conv_bn(cin, cout, k, stride=1, padding=0, groups=1, dilation=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias=False),
                         _bn(cout))


class RepVGG(nn.Module):
    """k×k + 1×1 (+ a BatchNorm of the input where stride 1 keeps the shape), then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.kxk = _conv_bn(cin, cout, 3, stride, 1)
        self.one = _conv_bn(cin, cout, 1, stride, 0)
        self.identity = _bn(cin) if cin == cout and stride == 1 else None

    def forward(self, x):
        y = self.kxk(x) + self.one(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return F.relu(y)


class MobileOne(nn.Module):
    """Depthwise: four 3×3 branches, a 1×1 'scale' branch and an identity BatchNorm, summed the
    way timm writes it (scale + identity first; `+ 0` where a block has no identity)."""

    def __init__(self, c, identity=True):
        super().__init__()
        self.branches = nn.ModuleList(_conv_bn(c, c, 3, 1, 1, groups=c) for _ in range(4))
        self.scale = _conv_bn(c, c, 1, groups=c)
        self.identity = _bn(c) if identity else None
        self.pw = nn.ModuleList(_conv_bn(c, 2 * c, 1) for _ in range(2))

    def forward(self, x):
        out = self.scale(x) + (self.identity(x) if self.identity is not None else 0)
        for b in self.branches:
            out = out + b(x)
        x = F.relu(out)
        return F.relu(self.pw[0](x) + self.pw[1](x))


class ACNet(nn.Module):
    """3×3 + 1×3 + 3×1 (the small kernels fill a row and a column of the 3×3), then a 1×1 plus
    its own input (the identity as a tap)."""

    def __init__(self, c):
        super().__init__()
        self.sq = nn.Conv2d(c, c, 3, padding=1)
        self.hor = nn.Conv2d(c, c, (1, 3), padding=(0, 1))
        self.ver = nn.Conv2d(c, c, (3, 1), padding=(1, 0))
        self.one = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.sq(x) + self.hor(x) + self.ver(x)
        return self.one(y) + y


def _types(text):
    return [ln.split()[0] for ln in text.splitlines()[2:] if ln.strip()]


@pytest.mark.parametrize("cin,cout,stride", [(8, 8, 1), (4, 8, 2), (8, 16, 1)])
def test_repvgg_block_is_one_convolution(tmp_path, cin, cout, stride):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, RepVGG(cin, cout, stride), (torch.randn(1, cin, 13, 11),))
    types = _types(text)
    assert types.count("Convolution") == 1, types
    assert not {"BinaryOp", "BatchNorm", "ReLU"} & set(types), types  # ReLU fused: 9=1


@pytest.mark.parametrize("identity", [True, False])
def test_mobileone_block_is_one_convolution_per_stage(tmp_path, identity):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, MobileOne(8, identity), (torch.randn(1, 8, 12, 12),))
    types = _types(text)
    assert types.count("ConvolutionDepthWise") == 1 and types.count("Convolution") == 1, types
    assert "BinaryOp" not in types and "BatchNorm" not in types, types


def test_off_centre_kernels_and_the_input_itself(tmp_path):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, ACNet(6), (torch.randn(1, 6, 10, 9),))
    types = _types(text)
    assert types.count("Convolution") == 2 and "BinaryOp" not in types, types


class Apart(nn.Module):
    """Sums that are not one convolution: other strides, another dilation, an activation in a
    branch, a branch read twice, a chain (ResNet's residual), a 2×2 kernel whose taps cannot
    sit inside a 3×3's, a 3×3 of a padded copy of the input."""

    def __init__(self, c=4):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=2, dilation=2)
        self.c = nn.Conv2d(c, c, 1)
        self.d = nn.Conv2d(c, c, 3, padding=1)
        self.e = nn.Conv2d(c, c, 2, padding=1)
        self.f = nn.Conv2d(c, c, 3, padding=1)
        self.g = nn.Conv2d(c, c, 3)

    def forward(self, x):
        y = self.a(x) + self.b(x)            # dilation 1 vs 2, both 3×3
        c = self.c(x)
        z = F.relu(self.d(x)) + c            # an activation inside one branch
        w = c * 2.0                          # c is read twice
        r = self.a(F.relu(self.d(x))) + x    # a chain, not a branch of x... of d's input
        e = self.e(x)[:, :, 1:, 1:] + self.f(x)
        g = self.g(F.pad(x, (2, 0, 2, 0))) + self.c(x)
        return y, z + w, r, e, g


def test_branches_that_do_not_line_up_stay_apart(tmp_path):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, Apart(), (torch.randn(1, 4, 9, 8),))
    types = _types(text)
    assert types.count("BinaryOp") >= 6, types


def test_neutral_scalar_ops_are_dropped(tmp_path):
    class Neutral(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return (torch.sigmoid(self.conv(x) * 1.0 + 0.0) / 1.0 - 0.0).flatten(1)

    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, Neutral(), (torch.randn(1, 3, 6, 6),))
    assert "BinaryOp" not in _types(text), text
