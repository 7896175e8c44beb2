"""STFT -> ncnn Spectrogram (one 1-D signal in, its complex frames out as real pairs).

ncnn's Spectrogram (operators.md; src/layer/spectrogram.cpp) frames a 1-D blob (w = samples)
every ``hoplen`` samples into ``(w - n_fft) / hoplen + 1`` frames of ``n_fft``, multiplies each
by its window and takes the DFT; with power=0 it writes (c = bins, h = frames, w = 2: real,
imaginary), the bins of onesided=1 being 0..n_fft/2 and those of onesided=0 the rest filled by
conjugate symmetry (exact for a real signal).  Its window is generated, not read: ones (0), a
periodic Hann (1) or Hamming (2) of ``winlen`` samples, centered in ``n_fft`` with
(n_fft - winlen) / 2 zeros in front (as torch.stft pads a shorter window).

ONNX STFT (opset 17) reads a signal (batch, samples, 1) (real) or (batch, samples, 2)
(complex), a frame_step, an optional window and frame_length, and writes
(batch, frames, bins, 2) with frames = (samples - frame_length) // frame_step + 1: the same
framing and DFT, without padding (the exporter writes torch's center padding as a Pad before)
and without normalization (a Div after).  So STFT maps to Spectrogram with center=0,
normalized=0, power=0, n_fft = frame_length, hoplen = frame_step, where the window is one that
ncnn generates: the constant window is compared with each of ncnn's windows (types 0..2, every
winlen up to n_fft, computed as spectrogram.cpp does in float32).  Any other
window, a complex signal, or a frame_step/frame_length not known at conversion time fail with a
line naming the node.

Each sample is a (samples, 1) blob, reshaped to 1-D (Reshape 0=-1) for the layer; the
(bins, frames, 2) result is permuted to ONNX's (frames, bins, 2) (Permute 0=order_type), unless
the STFT's only reader is the Transpose (0, 2, 1, 3) that torch.stft writes after it, whose
output is then the Spectrogram's own.  A batch of N runs sample by sample (``ctx.per_sample``).

ncnn params: Spectrogram 0=n_fft 1=power 2=hoplen 3=winlen 4=window_type (0 ones 1 hann
2 hamming) 5=center 6=pad_type 7=normalized 8=onesided; Reshape 0=w; Permute 0=order_type.
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from ..registry import register
from .common import attrs_of, permute_type

_WINDOW_TOL = 1e-6  # float32 cos of the same angle, computed by two libraries


def ncnn_window(n_fft: int, winlen: int, window_type: int) -> np.ndarray:
    """The window Spectrogram multiplies each frame by, as spectrogram.cpp computes it."""
    i = np.arange(winlen, dtype=np.float64)
    cos = np.cos((2 * np.pi * i / winlen).astype(np.float32)).astype(np.float32)
    if window_type == 0:
        w = np.ones(winlen, np.float32)
    elif window_type == 1:
        w = np.float32(0.5) * (np.float32(1) - cos)
    else:
        w = np.float32(0.54) - np.float32(0.46) * cos
    left = (n_fft - winlen) // 2
    return np.concatenate([np.zeros(left, np.float32), w,
                           np.zeros(n_fft - winlen - left, np.float32)])


def match_window(window: np.ndarray) -> tuple[int, int] | None:
    """(window_type, winlen) of the ncnn window equal to ``window``, or None."""
    n_fft = window.size
    window = np.asarray(window, np.float64)
    nz = np.flatnonzero(window)
    for winlen in range(n_fft, 0, -1):
        left = (n_fft - winlen) // 2
        if nz.size and (nz[0] < left or nz[-1] >= left + winlen):
            break  # a shorter window would have zeros where this one has none
        for window_type in (0, 1, 2):
            if np.max(np.abs(ncnn_window(n_fft, winlen, window_type) - window)) <= _WINDOW_TOL:
                return window_type, winlen
    return None


def _scalar(ctx, v, what: str) -> int:
    return int(np.asarray(ctx.need_const(v, what)).reshape(-1)[0])


@register("STFT", 17)
def stft(ctx, node):
    ins = list(node.inputs) + [None] * 4
    x, step, window, length = ins[:4]
    y = node.outputs[0]
    if ctx.shape(x)[-1] != 1:
        ctx.fail("a complex signal (last dim 2) has no ncnn Spectrogram form; ncnn's reads "
                 "a real signal")
    hop = _scalar(ctx, step, "the STFT frame_step")
    win = None
    if window is not None and window.name:
        win = np.asarray(ctx.need_const(window, "the STFT window"), np.float64).reshape(-1)
    if length is not None and length.name:
        n_fft = _scalar(ctx, length, "the STFT frame_length")
    elif win is not None:
        n_fft = win.size
    else:
        ctx.fail("STFT without a window or a frame_length has no frame length")
    if win is None:
        win = np.ones(n_fft)
    if win.size != n_fft:
        ctx.fail(f"window of {win.size} samples for frames of {n_fft}")
    found = match_window(win)
    onesided = int(attrs_of(node).get("onesided", 1))

    out = y
    post = ctx.single_consumer(y)
    if post is not None and post.op_type == "Transpose" and \
            list(attrs_of(post).get("perm", [])) == [0, 2, 1, 3]:
        out = post.outputs[0]  # (batch, bins, frames, 2): Spectrogram's own layout
        ctx.skip.add(id(post))
    if found is None:  # any other window: the windowed DFT as a strided Convolution1D
        return _stft_conv(ctx, x, y, out, win, hop, onesided)
    window_type, winlen = found
    params = {0: n_fft, 1: 0, 2: hop, 3: winlen, 4: window_type, 5: 0, 7: 0, 8: onesided}

    def one(src, top):
        flat = ctx.add("Reshape", [src], [ctx.g.unique(y.name + "_signal")], {0: -1})
        if out is not y:
            return ctx.add("Spectrogram", [flat], [top], params)
        spec = ctx.add("Spectrogram", [flat], [ctx.g.unique(y.name + "_spec")], params)
        return ctx.add("Permute", [spec], [top], {0: permute_type((1, 0, 2))})

    ctx.per_sample(x, out, one)


def _stft_conv(ctx, x, y, out, win, hop, onesided):
    """STFT with a window ncnn does not generate (the exporter's HammingWindow is
    0.54347826 - 0.45652174 cos, not torch's 0.54 - 0.46 cos): output channel 2k + part of a
    Convolution1D (0=num_output 1=kernel_w 3=stride_w 6=weight_data_size) over the (1, samples)
    signal has the weights window[t] * cos(2 pi k t / n) (real part) and
    -window[t] * sin(2 pi k t / n) (imaginary), so its (2 * bins, frames) result is the STFT;
    a Reshape to (bins, 2, frames) and a Permute give ONNX's (frames, bins, 2), or
    (bins, frames, 2) where the Transpose after it was absorbed."""
    n_fft = win.size
    bins = n_fft // 2 + 1 if onesided else n_fft
    t = np.arange(n_fft, dtype=np.float64)
    ang = 2 * np.pi * np.outer(np.arange(bins), t) / n_fft
    w = np.stack([np.cos(ang) * win, -np.sin(ang) * win], axis=1)  # (bins, 2, n_fft)
    weight = w.reshape(2 * bins, 1, n_fft).astype(np.float32)
    frames = int(ctx.shape(y)[1])
    p = {0: 2 * bins, 1: n_fft, 3: hop, 5: 0, 6: int(weight.size)}
    order = (2, 0, 1) if out is y else (0, 2, 1)

    def one(src, top):
        sig = ctx.add("Reshape", [src], [ctx.g.unique(y.name + "_signal")], {0: -1, 1: 1})
        conv = ctx.add("Convolution1D", [sig], [ctx.g.unique(y.name + "_dft")], p,
                       [Weight(weight, flagged=True)])
        parts = ctx.add("Reshape", [conv], [ctx.g.unique(y.name + "_parts")],
                        {0: frames, 1: 2, 2: bins})
        return ctx.add("Permute", [parts], [top], {0: permute_type(order)})

    ctx.per_sample(x, out, one)
