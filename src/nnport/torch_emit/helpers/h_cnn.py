"""Convolution / pooling / normalization helpers for cases torch's own calls do not cover
(run-time SAME padding, asymmetric pool padding, ONNX ceil-mode rules, dilated average pooling,
ONNX-style MaxPool indices, MaxRoiPool, DeformConv)."""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .h_pads import _same_pads, _torch_pads  # pure Python: the emitters use them too

__all__ = ['_same_pads', '_torch_pads', '_pad_same', '_pool_pads', '_lowest', '_max_pool_nd', '_onnx_pool_indices', '_window_sum', '_avg_pool_nd', '_lp_pool_nd', '_max_roi_pool', '_bilinear_zero', '_deform_conv2d', '_dropout']


def _pad_same(x: torch.Tensor, kernel: List[int], strides: List[int], dilations: List[int],
              upper: bool, value: float = 0.0) -> torch.Tensor:
    """Pad ``x`` (N, C, *spatial) as ONNX auto_pad SAME_UPPER / SAME_LOWER does."""
    sizes = list(x.shape[2:])
    pads = _same_pads(sizes, kernel, strides, dilations, upper)
    return F.pad(x, _torch_pads(pads), value=value)


_pad_same._nnport_deps = ("_same_pads", "_torch_pads")


def _pool_pads(sizes: List[int], kernel: List[int], strides: List[int], dilations: List[int],
               pads: List[int], ceil_mode: bool) -> List[int]:
    """ONNX pool pads, extended at the end so that a floor-mode pool yields ONNX's output size
    (ceil mode: the last window must start inside the input or the leading padding)."""
    n = len(kernel)
    out_pads = list(pads)
    for i in range(n):
        eff = (kernel[i] - 1) * dilations[i] + 1
        span = sizes[i] + pads[i] + pads[i + n] - eff
        if ceil_mode:
            out = -(-span // strides[i]) + 1
            if (out - 1) * strides[i] >= sizes[i] + pads[i]:
                out -= 1
        else:
            out = span // strides[i] + 1
        need = (out - 1) * strides[i] + eff - (sizes[i] + pads[i] + pads[i + n])
        if need > 0:
            out_pads[i + n] += need
    return out_pads


def _lowest(x: torch.Tensor) -> float:
    if x.dtype.is_floating_point:
        return -math.inf
    return float(torch.iinfo(x.dtype).min)


def _max_pool_nd(x: torch.Tensor, kernel: List[int], strides: List[int], dilations: List[int],
                 pads: List[int], ceil_mode: bool = False,
                 storage_order: int = -1) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """ONNX MaxPool with any pads (filled with the lowest value) and ONNX ceil-mode rules.
    ``storage_order`` >= 0 also returns ONNX Indices (flat over the whole input, row-major for
    0, column-major spatial order for 1)."""
    n = len(kernel)
    sizes = list(x.shape[2:])
    full = _pool_pads(sizes, kernel, strides, dilations, pads, ceil_mode)
    xp = F.pad(x, _torch_pads(full), value=_lowest(x))
    if n == 1:
        y, idx = F.max_pool1d(xp, kernel, strides, 0, dilations, return_indices=True)
    elif n == 2:
        y, idx = F.max_pool2d(xp, kernel, strides, 0, dilations, return_indices=True)
    else:
        y, idx = F.max_pool3d(xp, kernel, strides, 0, dilations, return_indices=True)
    if storage_order < 0:
        return y, None
    padded = list(xp.shape[2:])
    return y, _onnx_pool_indices(idx, x, padded, full[:n], storage_order)


_max_pool_nd._nnport_deps = ("_pool_pads", "_torch_pads", "_lowest", "_onnx_pool_indices")


def _onnx_pool_indices(idx: torch.Tensor, x: torch.Tensor, padded: List[int], begins: List[int],
                       storage_order: int = 0) -> torch.Tensor:
    """torch max-pool indices (flat per plane of a padded input) -> ONNX MaxPool Indices."""
    sizes = list(x.shape[2:])
    n = len(sizes)
    coords: List[torch.Tensor] = []
    rest = idx
    for i in range(n - 1, -1, -1):
        coords.insert(0, rest % padded[i] - begins[i])
        rest = torch.div(rest, padded[i], rounding_mode="floor")
    flat = torch.zeros_like(idx)
    if storage_order == 0:
        for i in range(n):
            flat = flat * sizes[i] + coords[i]
    else:
        for i in range(n - 1, -1, -1):
            flat = flat * sizes[i] + coords[i]
    plane = 1
    for s in sizes:
        plane *= s
    nc = torch.arange(x.shape[0] * x.shape[1], device=idx.device, dtype=idx.dtype)
    nc = nc.reshape([x.shape[0], x.shape[1]] + [1] * n)
    return flat + nc * plane


def _window_sum(x: torch.Tensor, kernel: List[int], strides: List[int],
                dilations: List[int]) -> torch.Tensor:
    """Sum of each (dilated) pooling window, per channel, no padding."""
    c = x.shape[1]
    w = torch.ones([c, 1] + kernel, dtype=x.dtype, device=x.device)
    if len(kernel) == 1:
        return F.conv1d(x, w, None, strides, 0, dilations, c)
    if len(kernel) == 2:
        return F.conv2d(x, w, None, strides, 0, dilations, c)
    return F.conv3d(x, w, None, strides, 0, dilations, c)


def _avg_pool_nd(x: torch.Tensor, kernel: List[int], strides: List[int], dilations: List[int],
                 pads: List[int], ceil_mode: bool = False,
                 count_include_pad: bool = False) -> torch.Tensor:
    """ONNX AveragePool with any pads and dilations: window sums divided by the number of
    input (and, with count_include_pad, padding) elements in each window."""
    n = len(kernel)
    sizes = list(x.shape[2:])
    full = _pool_pads(sizes, kernel, strides, dilations, pads, ceil_mode)
    sums = _window_sum(F.pad(x, _torch_pads(full)), kernel, strides, dilations)
    ones = torch.ones([1, 1] + sizes, dtype=x.dtype, device=x.device)
    if count_include_pad:
        ones = F.pad(ones, _torch_pads(pads), value=1.0)
        extra = [0] * n + [full[n + i] - pads[n + i] for i in range(n)]
        mask = F.pad(ones, _torch_pads(extra))
    else:
        mask = F.pad(ones, _torch_pads(full))
    counts = _window_sum(mask, kernel, strides, dilations)
    return sums / counts


_avg_pool_nd._nnport_deps = ("_pool_pads", "_torch_pads", "_window_sum")


def _lp_pool_nd(x: torch.Tensor, kernel: List[int], strides: List[int], dilations: List[int],
                pads: List[int], p: float, ceil_mode: bool = False) -> torch.Tensor:
    """ONNX LpPool: (sum over each window of |x|^p) ^ (1/p), zero padding."""
    sizes = list(x.shape[2:])
    full = _pool_pads(sizes, kernel, strides, dilations, pads, ceil_mode)
    sums = _window_sum(F.pad(x.abs().pow(p), _torch_pads(full)), kernel, strides, dilations)
    return sums.pow(1.0 / p)


_lp_pool_nd._nnport_deps = ("_pool_pads", "_torch_pads", "_window_sum")


def _max_roi_pool(x: torch.Tensor, rois: torch.Tensor, pooled: List[int],
                  spatial_scale: float) -> torch.Tensor:
    """ONNX MaxRoiPool (Fast R-CNN RoI max pooling); empty bins give 0."""
    ph, pw = pooled[0], pooled[1]
    h, w = x.shape[2], x.shape[3]
    outs: List[torch.Tensor] = []
    for r in range(rois.shape[0]):
        roi = rois[r]
        b = int(roi[0].item())
        x1 = int(torch.round(roi[1] * spatial_scale).item())
        y1 = int(torch.round(roi[2] * spatial_scale).item())
        x2 = int(torch.round(roi[3] * spatial_scale).item())
        y2 = int(torch.round(roi[4] * spatial_scale).item())
        rh = max(y2 - y1 + 1, 1)
        rw = max(x2 - x1 + 1, 1)
        out = torch.zeros([x.shape[1], ph, pw], dtype=x.dtype, device=x.device)
        for i in range(ph):
            hs = min(max(int(math.floor(i * rh / ph)) + y1, 0), h)
            he = min(max(int(math.ceil((i + 1) * rh / ph)) + y1, 0), h)
            for j in range(pw):
                ws = min(max(int(math.floor(j * rw / pw)) + x1, 0), w)
                we = min(max(int(math.ceil((j + 1) * rw / pw)) + x1, 0), w)
                if he > hs and we > ws:
                    out[:, i, j] = x[b, :, hs:he, ws:we].amax(dim=(1, 2))
        outs.append(out)
    if len(outs) == 0:
        return x.new_zeros([0, x.shape[1], ph, pw])
    return torch.stack(outs)


def _bilinear_zero(img: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (N, C, H, W) at float positions py/px (N, *S) with bilinear interpolation,
    zero outside; returns (N, C, *S)."""
    n, c, h, w = img.shape[0], img.shape[1], img.shape[2], img.shape[3]
    y0 = torch.floor(py)
    x0 = torch.floor(px)
    out = torch.zeros([n, c] + list(py.shape[1:]), dtype=img.dtype, device=img.device)
    flat = img.reshape(n, c, h * w)
    for dy in (0, 1):
        for dx in (0, 1):
            yy = y0 + dy
            xx = x0 + dx
            wy = 1.0 - (py - yy).abs()
            wx = 1.0 - (px - xx).abs()
            valid = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            lin = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).to(torch.int64).reshape(n, 1, -1)
            vals = torch.gather(flat, 2, lin.expand(n, c, lin.shape[2]))
            vals = vals.reshape(out.shape)
            out = out + vals * (wy * wx * valid.to(img.dtype)).unsqueeze(1)
    return out


def _deform_conv2d(x: torch.Tensor, w: torch.Tensor, offset: torch.Tensor,
                   b: Optional[torch.Tensor], mask: Optional[torch.Tensor], strides: List[int],
                   pads: List[int], dilations: List[int], group: int,
                   offset_group: int) -> torch.Tensor:
    """ONNX DeformConv (2-D): convolution sampling the input at offset positions (bilinear,
    zero outside), each sample scaled by ``mask``."""
    n, c = x.shape[0], x.shape[1]
    oc, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    oh, ow = offset.shape[2], offset.shape[3]
    k = kh * kw
    ky = torch.arange(kh, device=x.device, dtype=x.dtype).repeat_interleave(kw) * dilations[0]
    kx = torch.arange(kw, device=x.device, dtype=x.dtype).repeat(kh) * dilations[1]
    base_y = torch.arange(oh, device=x.device, dtype=x.dtype) * strides[0] - pads[0]
    base_x = torch.arange(ow, device=x.device, dtype=x.dtype) * strides[1] - pads[1]
    off = offset.reshape(n, offset_group, k, 2, oh, ow)
    py = base_y.reshape(1, 1, 1, oh, 1) + ky.reshape(1, 1, k, 1, 1) + off[:, :, :, 0]
    px = base_x.reshape(1, 1, 1, 1, ow) + kx.reshape(1, 1, k, 1, 1) + off[:, :, :, 1]
    cg = c // offset_group
    cols: List[torch.Tensor] = []
    for g in range(offset_group):
        s = _bilinear_zero(x[:, g * cg:(g + 1) * cg], py[:, g], px[:, g])  # (N, cg, k, oh, ow)
        if mask is not None:
            s = s * mask.reshape(n, offset_group, k, oh, ow)[:, g].unsqueeze(1)
        cols.append(s)
    col = torch.cat(cols, 1)  # (N, C, k, oh, ow)
    cpg = c // group
    opg = oc // group
    outs: List[torch.Tensor] = []
    for g in range(group):
        cg_col = col[:, g * cpg:(g + 1) * cpg].reshape(n, cpg * k, oh * ow)
        wg = w[g * opg:(g + 1) * opg].reshape(opg, cpg * k)
        outs.append(torch.matmul(wg, cg_col))
    y = torch.cat(outs, 1).reshape(n, oc, oh, ow)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


_deform_conv2d._nnport_deps = ("_bilinear_zero",)


def _dropout(x: torch.Tensor, ratio: float, training: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """ONNX Dropout: (output, mask).  Outside training (or with ratio 0) it is the identity."""
    if not training or ratio == 0.0:
        return x, torch.ones(x.shape, dtype=torch.bool, device=x.device)
    mask = torch.rand(x.shape, device=x.device) >= ratio
    return x * mask.to(x.dtype) / (1.0 - ratio), mask
