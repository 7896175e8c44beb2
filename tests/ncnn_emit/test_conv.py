"""Conv/ConvTranspose -> Convolution*/Deconvolution*: batches other than 1 run sample by
sample (ncnn's convolutions take one (C, spatial...) sample)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


@pytest.mark.parametrize("shape,conv", [
    ((2, 3, 11, 13), nn.Conv2d(3, 8, 3, padding=1)),
    ((3, 4, 20), nn.Conv1d(4, 6, 3, stride=2)),
    ((2, 6, 9, 7), nn.ConvTranspose2d(6, 4, 3, stride=2)),
])
def test_conv_on_a_batch_of_several(tmp_path, shape, conv):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, conv, (torch.rand(*shape),), layers=["Concat"])


def test_depth_to_space_on_a_batch_of_two(tmp_path):
    ncnn_matches(tmp_path, nn.PixelShuffle(2), (torch.rand(2, 8, 3, 5),),
                 layers=["PixelShuffle"])
