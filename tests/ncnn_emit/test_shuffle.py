"""Channel and pixel shuffles that torch's dynamo exporter writes as reshapes to 5 or 6 dims,
transposes and selects: each is brought within ncnn's 4 dims by exact rewrites
(``legalize/rewrite.py``) and must give torch's numbers."""
from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Unshuffles(nn.Module):
    """Two pixel_unshuffles in a row: each is a reshape to rank 6 and a transpose, and the
    second reshape reads the first transpose's rank-6 result."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return F.pixel_unshuffle(F.pixel_unshuffle(x, self.a), self.b)


@pytest.mark.parametrize("shape,a,b", [
    ((1, 3, 24, 16), 4, 2),
    ((2, 3, 24, 16), 2, 4),
    ((1, 5, 9, 15), 3, 1),
    ((3, 2, 12, 6), 2, 3),
])
def test_pixel_unshuffle_twice(tmp_path, shape, a, b):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Unshuffles(a, b), (torch.rand(*shape),), dynamo=True)


class Shuffles(nn.Module):
    def __init__(self, g1, g2):
        super().__init__()
        self.s1, self.s2 = nn.ChannelShuffle(g1), nn.ChannelShuffle(g2)

    def forward(self, x):
        return self.s2(self.s1(x))


@pytest.mark.parametrize("shape,g1,g2", [
    ((1, 12, 5, 7), 2, 6),
    ((2, 12, 5, 7), 3, 4),
    ((1, 24, 3, 5, 4), 2, 8),  # rank 5: the shuffle reshapes to rank 6
    ((1, 6, 11), 3, 2),
])
def test_channel_shuffle_twice(tmp_path, shape, g1, g2):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Shuffles(g1, g2), (torch.rand(*shape),), dynamo=True)


class ShuffleHalves(nn.Module):
    """ShuffleNetV2's channel shuffle that returns the two halves: a reshape that moves the
    pairs of channels to the front, then a rank-5 (2, N, C/2, H, W) view and x[0], x[1]."""

    def __init__(self, c_in, c):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 1)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        x = x.reshape(n * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
        return x[0], x[1] * 2


@pytest.mark.parametrize("shape,c", [((1, 14, 5, 6), 24), ((2, 3, 7, 5), 8),
                                     ((1, 4, 1, 9), 6)])
def test_channel_shuffle_halves(tmp_path, shape, c):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, ShuffleHalves(shape[1], c), (torch.rand(*shape),), dynamo=True,
                 layers=["Crop"])


class SelectAfterReshape(nn.Module):
    """x[k] and x[:, j] of a rank-5 view: only a selection on an axis the reshape keeps can
    be taken first."""

    def forward(self, x):  # (6, 4, 10)
        v = x.reshape(6, 2, 2, 2, 5)
        return v[4], v[-1, 1], v[:, 1]


def test_select_before_a_rank5_view(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, SelectAfterReshape(), (torch.rand(6, 4, 10),), dynamo=True)
