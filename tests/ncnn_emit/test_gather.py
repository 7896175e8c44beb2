"""Gather/GatherND -> one-hot Gemm (run-time indices into a constant table), Crop+Concat (constant
indices into a run-time tensor); Gemm whose weight is an input -> Gemm with B as a bottom."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches, onnx_matches  # noqa: E402


class Embedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)

    def forward(self, ids, ids2):
        return self.emb(ids) * 2, self.emb(ids2)


@pytest.mark.parametrize("shape", [(1, 7), (7,), (2, 5)])
def test_embedding_of_run_time_indices(tmp_path, shape):
    torch.manual_seed(0)
    ids = torch.randint(0, 50, shape)
    ncnn_matches(tmp_path, Embedding(), (ids, torch.randint(0, 50, (3,))), layers=["Gemm"])


class Pick(nn.Module):
    def forward(self, x, w, b):
        return x[:, [0, 2, 3, 5]] + 1, x[..., [4, 1, 1]], F.linear(x, w, b)


def test_constant_indices_and_run_time_gemm_weight(tmp_path):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Pick(), (torch.rand(3, 6), torch.rand(4, 6), torch.rand(4)),
                 layers=["Concat", "Gemm"])


def test_gather_nd_constant_indices(tmp_path):
    from onnx import helper, numpy_helper

    idx = numpy_helper.from_array(np.array([[[0, 1], [2, 0]], [[1, 1], [0, 0]]], np.int64), "i")
    x = np.random.RandomState(0).rand(3, 2, 5).astype(np.float32)
    onnx_matches(tmp_path, [helper.make_node("Relu", ["x"], ["r"]),
                            helper.make_node("GatherND", ["r", "i"], ["y"])], {"x": x},
                 inits=[idx])
