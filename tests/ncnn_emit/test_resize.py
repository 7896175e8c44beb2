"""Resize -> Interp (0=resize_type 1=height_scale 2=width_scale 3=output_height
4=output_width 6=align_corner) on (N, C, W) and (N, C, H, W), any batch."""
from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Resizes(nn.Module):
    def forward(self, x, y, z):
        return (F.interpolate(x, scale_factor=2, mode="nearest"),
                F.interpolate(y, size=(7, 9), mode="bilinear", align_corners=False),
                F.interpolate(z, size=13, mode="linear", align_corners=True))


def test_resize_on_other_layouts(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Resizes(), (torch.rand(1, 3, 4, 5), torch.rand(2, 3, 4, 5),
                                       torch.rand(1, 4, 6)), layers=["Interp"])


class OddScale(nn.Module):
    def forward(self, w):
        return F.interpolate(w, scale_factor=(1.499, 1.499), mode="nearest")


def test_resize_follows_a_given_scale(tmp_path):
    """Output index i reads input floor(i / 1.499), not floor(i * 12 / 17)."""
    torch.manual_seed(0)
    ncnn_matches(tmp_path, OddScale(), (torch.rand(1, 8, 12, 12),), layers=["Interp"])


class GridSamples(nn.Module):
    """Every mode and padding of 2-D grid_sample, a grid made by a permute (ncnn's
    permute_fusion), 3-D sampling, and a batch of two."""

    def forward(self, x, g, gp, v, gv, q, gq):
        import torch.nn.functional as F

        outs = []
        for align in (False, True):
            for mode in ("bilinear", "nearest", "bicubic"):
                for pad in ("zeros", "border", "reflection"):
                    outs.append(F.grid_sample(x, g * 2.4 - 1.2, mode=mode, padding_mode=pad,
                                              align_corners=align))
        outs.append(F.grid_sample(x, gp.permute(0, 2, 3, 1), padding_mode="border",
                                  align_corners=False))
        outs.append(F.grid_sample(v, gv * 2 - 1, align_corners=True))
        outs.append(F.grid_sample(q, gq * 2 - 1, mode="nearest", padding_mode="reflection",
                                  align_corners=False))
        return tuple(outs)


def test_grid_sample(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(1, 3, 12, 16), torch.rand(1, 9, 11, 2), torch.rand(1, 2, 7, 5) * 2 - 1,
            torch.rand(1, 2, 5, 6, 7), torch.rand(1, 4, 3, 5, 3), torch.rand(2, 3, 8, 9),
            torch.rand(2, 5, 4, 2))
    text = ncnn_matches(tmp_path, GridSamples(), args, layers=["GridSample"], dynamo=True)
    layers = [ln.split() for ln in text.splitlines()[2:]]
    assert sum(ln[0] == "GridSample" for ln in layers) == 18 + 1 + 1 + 2
    assert any(ln[0] == "GridSample" and "3=1" in ln for ln in layers)  # the permute fused
