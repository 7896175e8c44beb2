"""Resize / GridSample / Col2Im helpers: the ONNX formulas, written with plain torch ops."""
import math
from typing import List, Optional

import torch
import torch.nn.functional as F

__all__ = ["_resize_weights", "_onnx_resize", "_col2im"]


def _resize_weights(in_len: int, out_len: int, scale: float, mode: str, coord_mode: str,
                    nearest_mode: str, cubic_a: float, exclude_outside: bool, antialias: bool,
                    roi_start: float, roi_end: float):
    """ONNX Resize along one axis as a dense (out_len, in_len) float64 matrix, plus a mask of
    the output positions that take the extrapolation value (tf_crop_and_resize only)."""
    y = torch.arange(out_len, dtype=torch.float64)
    out_f = scale * in_len
    extrap = None
    if coord_mode == "align_corners":
        x = y * 0.0 if out_len == 1 else y * (in_len - 1) / (out_len - 1)
    elif coord_mode == "asymmetric":
        x = y / scale
    elif coord_mode == "tf_crop_and_resize":
        if out_len == 1:
            x = y * 0.0 + (roi_end + roi_start) * (in_len - 1) / 2
        else:
            x = y * (roi_end - roi_start) * (in_len - 1) / (out_len - 1)
            x = x + roi_start * (in_len - 1)
        extrap = (x < 0) | (x > in_len - 1)
    elif coord_mode == "pytorch_half_pixel":
        x = y * 0.0 if out_len == 1 else (y + 0.5) / scale - 0.5
    elif coord_mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_f)
        x = offset + (y + 0.5) / scale - 0.5
    else:  # half_pixel
        x = (y + 0.5) / scale - 0.5
    if mode == "nearest":
        if nearest_mode == "round_prefer_ceil":
            idx = torch.floor(x + 0.5)
        elif nearest_mode == "floor":
            idx = torch.floor(x)
        elif nearest_mode == "ceil":
            idx = torch.ceil(x)
        elif nearest_mode == "simple":  # Resize-10 / Upsample
            idx = torch.ceil(x) if scale < 1 else torch.floor(x)
        else:  # round_prefer_floor
            idx = torch.ceil(x - 0.5)
        idx = idx.long().clamp(0, in_len - 1)
        w = F.one_hot(idx, in_len).to(torch.float64)
        return w, extrap
    # taps start at base + k; ratio = x - base lies in (0, 1]
    base = torch.ceil(x) - 1
    ratio = x - base
    s = min(scale, 1.0) if antialias else 1.0
    if mode == "cubic":
        start = int(math.floor(-2 / s) + 1)
        n = 4 - 2 * start
    else:
        start = int(math.floor(-1 / s) + 1)
        n = 2 - 2 * start
    k = torch.arange(start, start + n, dtype=torch.float64)
    d = ((k[None, :] - ratio[:, None]) * s).abs()
    if mode == "cubic":
        a = cubic_a
        near = ((a + 2) * d - (a + 3)) * d * d + 1
        far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        coef = torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))
    else:
        coef = (1 - d).clamp(0, 1)
    if antialias:
        coef = coef / coef.sum(dim=1, keepdim=True)
    idx = base.long()[:, None] + k.long()[None, :]
    if exclude_outside:
        coef = torch.where((idx < 0) | (idx >= in_len), torch.zeros_like(coef), coef)
        total = coef.sum(dim=1, keepdim=True)
        coef = coef / torch.where(total == 0, torch.ones_like(total), total)
    idx = idx.clamp(0, in_len - 1)
    w = torch.zeros(out_len, in_len, dtype=torch.float64).scatter_add_(1, idx, coef)
    return w, extrap


def _onnx_resize(x: torch.Tensor, sizes: Optional[List[int]], scales: Optional[List[float]],
                 axes: Optional[List[int]] = None, mode: str = "nearest",
                 coord_mode: str = "half_pixel", nearest_mode: str = "round_prefer_floor",
                 cubic_a: float = -0.75, exclude_outside: bool = False,
                 extrapolation_value: float = 0.0, antialias: bool = False,
                 roi: Optional[List[float]] = None, aspect_policy: str = "stretch"):
    """ONNX Resize (opset 11+ semantics), one axis at a time."""
    rank = x.dim()
    if axes is None:
        axes = list(range(rank))
    axes = [a % rank for a in axes]
    in_shape = [int(d) for d in x.shape]
    if sizes is not None:
        scl = [sizes[i] / in_shape[a] for i, a in enumerate(axes)]
        out = [int(v) for v in sizes]
        if aspect_policy != "stretch":
            s = min(scl) if aspect_policy == "not_larger" else max(scl)
            scl = [s] * len(axes)
            out = [int(s * in_shape[a] + 0.5) for a in axes]
    else:
        scl = [float(v) for v in scales]
        out = [int(s * in_shape[a]) for s, a in zip(scl, axes)]
    result = x.to(torch.float64)
    n = len(axes)
    for i, a in enumerate(axes):
        r0 = 0.0 if roi is None else float(roi[i])
        r1 = 1.0 if roi is None else float(roi[n + i])
        if scl[i] == 1.0 and out[i] == in_shape[a] and r0 == 0.0 and r1 == 1.0:
            continue
        w, extrap = _resize_weights(in_shape[a], out[i], scl[i], mode, coord_mode, nearest_mode,
                                    cubic_a, exclude_outside, antialias, r0, r1)
        w = w.to(result.device)
        result = torch.movedim(torch.matmul(w, torch.movedim(result, a, -2)), -2, a)
        if extrap is not None:
            shape = [1] * rank
            shape[a] = out[i]
            result = result.masked_fill(extrap.to(result.device).reshape(shape),
                                        extrapolation_value)
    if x.dtype.is_floating_point:
        return result.to(x.dtype)
    info = torch.iinfo(x.dtype)
    return torch.round(result).clamp(info.min, info.max).to(x.dtype)


_onnx_resize._nnport_deps = ("_resize_weights",)


def _col2im(x: torch.Tensor, image_shape: List[int], block_shape: List[int],
            dilations: List[int], pads: List[int], strides: List[int]) -> torch.Tensor:
    """ONNX Col2Im for any number of spatial dims: scatter-add each block column back."""
    n, ck, num_blocks = x.shape
    nd = len(image_shape)
    kprod = 1
    for b in block_shape:
        kprod *= b
    c = ck // kprod
    padded = [image_shape[i] + pads[i] + pads[i + nd] for i in range(nd)]
    counts = [(padded[i] - (dilations[i] * (block_shape[i] - 1) + 1)) // strides[i] + 1
              for i in range(nd)]
    # flat index (in the padded image) of every (kernel offset, block position) pair
    flat = torch.zeros([1] * (2 * nd), dtype=torch.int64, device=x.device)
    stride_flat = 1
    for i in reversed(range(nd)):
        k = torch.arange(block_shape[i], device=x.device) * dilations[i]
        p = torch.arange(counts[i], device=x.device) * strides[i]
        shape_k = [1] * (2 * nd)
        shape_k[i] = block_shape[i]
        shape_p = [1] * (2 * nd)
        shape_p[nd + i] = counts[i]
        flat = flat + (k.reshape(shape_k) + p.reshape(shape_p)) * stride_flat
        stride_flat *= padded[i]
    flat = flat.reshape(1, 1, kprod * num_blocks).expand(n, c, kprod * num_blocks)
    cols = x.reshape(n, c, kprod * num_blocks)
    img = torch.zeros(n, c, stride_flat, dtype=x.dtype, device=x.device)
    img = img.scatter_add(2, flat, cols).reshape([n, c] + padded)
    for i in range(nd):
        img = img.narrow(2 + i, pads[i], image_shape[i])
    return img
