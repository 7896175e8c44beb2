"""Pad -> Padding on every ncnn rank: 2=left 3=right pad w, 0=top 1=bottom pad h, 7=front
8=behind pad the next axis out."""
from __future__ import annotations

import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Pads(nn.Module):
    def forward(self, a, b, c, d):
        return (F.pad(a, (2, 1)), F.pad(b, (1, 2, 3, 0), value=0.5),
                F.pad(c, (1, 1, 2, 0), mode="reflect"), F.pad(c, (0, 1, 2, 1, 1, 2)),
                F.pad(d, (1, 2, 0, 1), mode="replicate"))


def test_pad_on_every_rank(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Pads(), (torch.rand(16), torch.rand(2, 16), torch.rand(3, 12, 16),
                                    torch.rand(5, 7, 9, 11)), layers=["Padding"])
