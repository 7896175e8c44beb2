"""Einsum -> Einsum 0=equation, with a dropped batch axis of 1 taken out of the terms."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Einsums(nn.Module):
    def forward(self, x, z0, z1, r0, r1, r2, t0, t1):
        return (torch.einsum("ij->ji", x), torch.einsum("ijk->kij", z0),
                torch.einsum("bij,bjk->bik", z0, z1), torch.einsum("bn,anm,bm->ba", r0, r1, r2),
                torch.einsum("ij->i", x), torch.einsum("nchw,ncwo->ncho", t0, t1))


def test_einsum(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(4, 4), torch.rand(3, 2, 5), torch.rand(3, 5, 4), torch.rand(2, 5),
            torch.rand(3, 5, 4), torch.rand(2, 4), torch.rand(1, 3, 5, 7), torch.rand(1, 3, 7, 4))
    ncnn_matches(tmp_path, Einsums(), args, layers=["Einsum"], rtol=1e-3, atol=1e-4)


class EllipsisAndTotals(nn.Module):
    """An ellipsis (expanded to letters of its own, right-aligned), implicit outputs with one,
    and sums to a scalar (Einsum to one subscript, then a Reduction)."""

    def forward(self, w, z, a, b):
        return (torch.einsum("...ij->...ji", w), torch.einsum("abc...->cba...", w),
                torch.einsum("...ij,...jk", z, a), torch.einsum("ij->", b),
                torch.einsum("ii", b), torch.einsum("i...,i...->", a, a))


def test_einsum_ellipsis_and_scalar(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(2, 3, 4, 5), torch.rand(3, 2, 5), torch.rand(3, 5, 4), torch.rand(4, 4))
    text = ncnn_matches(tmp_path, EllipsisAndTotals(), args, layers=["Einsum", "Reduction"],
                        rtol=1e-3, atol=1e-4)
    assert "..." not in text
