"""Expand -> BinaryOp against zeros of the target shape (ncnn broadcasts), the identity when
only broadcasting ops read it; an input of lower rank gets numpy's leading 1s first."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Expands(nn.Module):
    def forward(self, x, y, z, q, r):
        return (torch.relu(x.expand(24)), torch.relu(y.expand(-1, 11, -1)),
                torch.relu(z.expand(8, 3, -1, 4)), torch.relu(q.expand(2, 1, 3, 5)),
                torch.relu(r.expand(1, 4, 6)), torch.relu(r.expand(3, 2, 4, 6)))


def test_expand_that_adds_dims(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(1), torch.rand(3, 1, 1), torch.rand(8, 1, 9, 1), torch.rand(1, 3, 1),
            torch.rand(4, 1))
    ncnn_matches(tmp_path, Expands(), args, layers=["BinaryOp"], dynamo=True)
