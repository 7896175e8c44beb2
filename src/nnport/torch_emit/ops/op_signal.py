"""Signal processing: DFT, STFT, Hann/Hamming/Blackman windows and MelWeightMatrix.

Windows print as ``torch.hann_window(n, periodic=True)``; DFT/STFT call small helpers built on
``torch.fft`` that keep ONNX's real/imaginary-last-dim layout.
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register

_FLOATS = {ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16}


def _int(ctx: Ctx, a: Arg | None) -> str | None:
    """An integer scalar input as a literal when constant, else ``int(a)``."""
    if a is None:
        return None
    c = ctx.const(a)
    if c is not None:
        return str(int(c.reshape(-1)[0]))
    return f"int({a})"


def _num(ctx: Ctx, a: Arg) -> str:
    c = ctx.const(a)
    if c is not None:
        v = c.reshape(-1)[0].item()
        return ctx.lit(v)
    dt = ctx.dtype(a)
    return f"float({a})" if dt is not None and dt.is_floating_point() else f"int({a})"


def _float(ctx: Ctx, a: Arg) -> str:
    c = ctx.const(a)
    if c is not None:
        return ctx.lit(float(c.reshape(-1)[0]))
    return f"float({a})"


@register("DFT", (17,))
def dft_17(ctx: Ctx, input: Arg, dft_length: Arg | None = None, *, inverse: int = 0,
           axis: int = 1, onesided: int = 0):
    return _dft(ctx, input, _int(ctx, dft_length), str(axis), inverse, onesided)


@register("DFT", (20,))
def dft_20(ctx: Ctx, input: Arg, dft_length: Arg | None = None, axis: Arg | None = None, *,
           inverse: int = 0, onesided: int = 0):
    return _dft(ctx, input, _int(ctx, dft_length), _int(ctx, axis) or "-2", inverse, onesided)


def _dft(ctx: Ctx, x: Arg, length: str | None, axis: str, inverse: int, onesided: int) -> str:
    args = [str(x)]
    if length is not None:
        args.append(f"dft_length={length}")
    args.append(f"axis={axis}")
    if inverse:
        args.append("inverse=True")
    if onesided:
        args.append("onesided=True")
    return f"{ctx.helper('_onnx_dft')}({', '.join(args)})"


@register("STFT", (17,))
def stft(ctx: Ctx, signal: Arg, frame_step: Arg, window: Arg | None = None,
         frame_length: Arg | None = None, *, onesided: int = 1):
    args = [str(signal), _int(ctx, frame_step)]
    if window is not None:
        args.append(f"window={window}")
    if frame_length is not None:
        args.append(f"frame_length={_int(ctx, frame_length)}")
    if not onesided:
        args.append("onesided=False")
    return f"{ctx.helper('_onnx_stft')}({', '.join(args)})"


def _window(fn: str, extra: str = ""):
    def emit(ctx: Ctx, size: Arg, *, periodic: int = 1, output_datatype: int = 1):
        dt = ir.DataType(output_datatype)
        n = _int(ctx, size)
        p = "True" if periodic else "False"
        if dt in _FLOATS:
            return f"{fn}({n}, periodic={p}{extra}, dtype={ctx.dtype_src(dt)})"
        return f"{fn}({n}, periodic={p}{extra}, dtype=torch.float64).to({ctx.dtype_src(dt)})"

    return emit


register("HannWindow", (17,))(_window("torch.hann_window"))
register("HammingWindow", (17,))(_window("torch.hamming_window",
                                         ", alpha=25 / 46, beta=21 / 46"))
register("BlackmanWindow", (17,))(_window("torch.blackman_window"))


@register("MelWeightMatrix", (17,))
def mel_weight_matrix(ctx: Ctx, num_mel_bins: Arg, dft_length: Arg, sample_rate: Arg,
                      lower_edge_hertz: Arg, upper_edge_hertz: Arg, *, output_datatype: int = 1):
    args = [_int(ctx, num_mel_bins), _int(ctx, dft_length), _num(ctx, sample_rate),
            _float(ctx, lower_edge_hertz), _float(ctx, upper_edge_hertz)]
    dt = ir.DataType(output_datatype)
    if dt != ir.DataType.FLOAT:
        args.append(f"dtype={ctx.dtype_src(dt)}")
    return f"{ctx.helper('_mel_weight_matrix')}({', '.join(args)})"
