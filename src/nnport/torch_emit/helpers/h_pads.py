"""ONNX padding arithmetic in plain Python: helpers of generated code, and used by the Conv
emitter at conversion time (so this module imports no torch)."""
from typing import List

__all__ = ['_same_pads', '_torch_pads']


def _same_pads(sizes: List[int], kernel: List[int], strides: List[int], dilations: List[int],
               upper: bool) -> List[int]:
    """ONNX auto_pad SAME_UPPER/SAME_LOWER pads ``[b1, b2, .., e1, e2, ..]`` for these sizes."""
    begins: List[int] = []
    ends: List[int] = []
    for i in range(len(kernel)):
        out = (sizes[i] + strides[i] - 1) // strides[i]
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - sizes[i])
        small = total // 2
        begins.append(small if upper else total - small)
        ends.append(total - small if upper else small)
    return begins + ends


def _torch_pads(pads: List[int]) -> List[int]:
    """ONNX pads ``[b1, b2, .., e1, e2, ..]`` -> F.pad order (last dim first)."""
    n = len(pads) // 2
    out: List[int] = []
    for i in range(n - 1, -1, -1):
        out += [pads[i], pads[i + n]]
    return out
