"""STFT -> ncnn Spectrogram (op_signal): torch.stft through the dynamo exporter (a Pad for
center=True, the STFT, a Transpose after, a Div for normalized=True), run in ncnn and compared
with torch; a window ncnn does not generate runs as a strided Convolution1D."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


class Stft(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        kw = dict(self.kw)
        win = kw.pop("window", None)
        if win is not None:
            kw["window"] = win
        return torch.view_as_real(torch.stft(x, return_complex=True, **kw))


CASES = [
    dict(n_fft=64, window=torch.hann_window(44), win_length=44, center=True, normalized=True),
    dict(n_fft=128, center=False, onesided=True),
    dict(n_fft=32, hop_length=5, center=False, onesided=False),
    dict(n_fft=48, window=torch.hann_window(48), hop_length=7, center=True,
         pad_mode="constant"),
    dict(n_fft=40, window=torch.ones(31), win_length=31, hop_length=9, center=True),
]


@pytest.mark.parametrize("kw", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("shape", [(1000,), (1, 777), (3, 600)])
def test_stft_is_spectrogram(tmp_path, kw, shape):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, Stft(**kw), (torch.rand(*shape),), layers=["Spectrogram"],
                        rtol=1e-3, atol=2e-3, dynamo=True)
    assert "Permute" not in text  # the Transpose after the STFT is the Spectrogram's layout


def test_stft_without_the_transpose_is_permuted(tmp_path):
    """An STFT read as ONNX writes it, (frames, bins, 2), gets a Permute after the layer."""

    class Frames(nn.Module):
        def forward(self, x):
            s = torch.view_as_real(torch.stft(x, 32, hop_length=6, return_complex=True,
                                              window=torch.hann_window(20), win_length=20))
            return s.transpose(-3, -2) * 2

    torch.manual_seed(0)
    ncnn_matches(tmp_path, Frames(), (torch.rand(400),), layers=["Spectrogram", "Permute"],
                 rtol=1e-3, atol=2e-3, dynamo=True)


def test_a_symmetric_hann_is_a_shorter_periodic_one(tmp_path):
    """hann_window(64, periodic=False) is the periodic Hann of 63 samples and a zero: exact."""
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Stft(n_fft=64, window=torch.hann_window(64, periodic=False)),
                 (torch.rand(500),), layers=["Spectrogram"], rtol=1e-3, atol=2e-3, dynamo=True)


@pytest.mark.parametrize("kw,shape", [
    (dict(n_fft=64, window=torch.blackman_window(64)), (500,)),
    (dict(n_fft=30, window=torch.linspace(0.2, 1.0, 30), hop_length=4, onesided=False,
          center=False), (3, 300)),
])
def test_any_other_window_is_a_strided_convolution(tmp_path, kw, shape):
    """A window ncnn's Spectrogram does not generate: the windowed DFT as Convolution1D."""
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, Stft(**kw), (torch.rand(*shape),),
                        layers=["Convolution1D", "Permute"], rtol=1e-3, atol=2e-3, dynamo=True)
    assert "Spectrogram" not in text


def test_exporters_hamming_window(tmp_path):
    """torch.hamming_window exported as ONNX HammingWindow (alpha 25/46, not torch's 0.54):
    ncnn follows the ONNX file, so it is compared with onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    from nnport.convert import convert
    from nnport.ncnn_emit.runner import NcnnRunner

    class Ham(nn.Module):
        def forward(self, x):
            return torch.view_as_real(torch.stft(x, 40, hop_length=10, return_complex=True,
                                                 window=torch.hamming_window(40)))

    x = torch.rand(1, 400)
    torch.onnx.export(Ham(), (x,), str(tmp_path / "h.onnx"), dynamo=True, optimize=True,
                      input_names=["x"], output_names=["y"])
    want = ort.InferenceSession(str(tmp_path / "h.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    convert(tmp_path / "h.onnx", tmp_path / "h.param", verify=False)
    got = NcnnRunner(tmp_path / "h.param").run({"x": x.numpy()})[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-3, atol=2e-3)
