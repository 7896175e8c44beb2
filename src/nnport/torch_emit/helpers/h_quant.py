"""Quantization helpers."""
import torch

__all__ = ["_dynamic_quantize_linear"]


def _dynamic_quantize_linear(x: torch.Tensor):
    """ONNX DynamicQuantizeLinear: uint8 quantization with a scale and zero point that make
    the data range (widened to include 0) fit [0, 255]."""
    x_max = torch.clamp(x.max(), min=0)
    x_min = torch.clamp(x.min(), max=0)
    span = torch.where(x_max == x_min, torch.ones_like(x_max), x_max - x_min)
    scale = span / 255
    zero_point = torch.round(torch.clamp(-x_min / scale, 0, 255))
    y = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)
    return y.to(torch.uint8), scale, zero_point.to(torch.uint8)
