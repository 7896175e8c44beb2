"""LayerNormalization over any number of trailing axes, on any batch (LayerNorm 0=affine_size
1=eps 2=affine; the normalized axes are merged into one where ncnn cannot take them as they
are)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class LNs(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln0 = nn.LayerNorm(16)
        self.ln1 = nn.LayerNorm((6, 16), eps=1e-2, elementwise_affine=False)
        self.ln2 = nn.LayerNorm((3, 6, 16), eps=1e-3)
        for p in self.parameters():
            p.data.uniform_(0.5, 1.5)

    def forward(self, x, w, q):
        return self.ln1(x), self.ln0(w), self.ln1(w), self.ln2(w), self.ln1(q)


def test_layernorm_over_trailing_axes(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, LNs(), (torch.rand(1, 6, 16), torch.rand(1, 3, 6, 16),
                                   torch.rand(2, 6, 16)), layers=["LayerNorm"], atol=1e-3)
