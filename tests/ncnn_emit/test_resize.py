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
