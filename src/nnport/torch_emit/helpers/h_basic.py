"""Small helpers shared by several op families."""
import torch

__all__ = ["_onnx_shape"]


def _onnx_shape(x: torch.Tensor, start: int = 0, end: int = 2**62) -> torch.Tensor:
    """ONNX Shape: the shape of ``x`` as an int64 tensor (slice [start:end])."""
    return torch.tensor(x.shape[start:end], dtype=torch.int64)
