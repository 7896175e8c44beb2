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


class DynamicWeights(nn.Module):
    """Weights as graph inputs: Convolution*/Deconvolution* with dynamic_weight=1."""

    def forward(self, x, w0, w1, b1, wt, q, w1d):
        import torch.nn.functional as F

        a = F.conv2d(x, w0, None, stride=2, padding=1)
        a = F.conv2d(a, w1, b1, padding=1, dilation=(2, 1), groups=2)
        t = F.conv_transpose2d(x, wt, None, stride=2, padding=1, output_padding=1)
        c = F.conv1d(q, w1d, None, padding=1)
        return a, t, c


def test_weights_computed_at_run_time(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(1, 12, 13, 11), torch.rand(16, 12, 3, 3), torch.rand(16, 8, 5, 5),
            torch.rand(16), torch.rand(12, 6, 4, 4), torch.rand(2, 6, 9), torch.rand(5, 6, 3))
    ncnn_matches(tmp_path, DynamicWeights(), args, layers=["Convolution", "Deconvolution"],
                 rtol=1e-3, atol=1e-3)


class Folds(nn.Module):
    def forward(self, x, y, q):
        import torch.nn.functional as F

        return (F.fold(x, output_size=22, kernel_size=3),
                F.fold(y, output_size=(5, 11), kernel_size=(2, 3), padding=2,
                       dilation=(1, 2)),
                F.fold(q, output_size=(9, 8), kernel_size=(2, 4), stride=(2, 1), padding=2))


def test_col2im_is_fold(tmp_path):
    # symmetric pads only: torch's TorchScript exporter writes Col2Im pads as [h, h, w, w]
    # where ONNX reads [h_begin, w_begin, h_end, w_end]
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Folds(), (torch.rand(1, 108, 400), torch.rand(1, 36, 88),
                                     torch.rand(2, 24, 54)), layers=["Fold"], opset=18)
