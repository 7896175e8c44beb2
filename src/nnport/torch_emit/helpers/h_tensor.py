"""Helpers for tensor manipulation ops whose ONNX semantics have no single torch call
(runtime shapes/pads/slices, GatherND/ScatterND, Unique's four outputs, ...)."""
from typing import List, Optional

import torch
import torch.nn.functional as F

__all__ = ['_onnx_ints', '_onnx_reshape', '_onnx_unsqueeze', '_onnx_slice', '_onnx_pad', '_onnx_gather_nd', '_onnx_scatter_nd', '_onnx_split_sizes', '_onnx_one_hot', '_onnx_reverse_sequence', '_onnx_cumulative', '_onnx_unique', '_onnx_center_crop_pad', '_onnx_tensor_scatter', '_onnx_to_e8m0']


def _onnx_ints(v) -> List[int]:
    """A shape-like value (tensor, list or int) as a list of Python ints."""
    if isinstance(v, torch.Tensor):
        return [int(i) for i in v.reshape(-1).tolist()]
    if isinstance(v, (list, tuple)):
        return [int(i) for i in v]
    return [int(v)]


def _onnx_reshape(x: torch.Tensor, shape, allowzero: int = 0) -> torch.Tensor:
    """ONNX Reshape with a run-time shape: 0 copies the input dim (unless allowzero), -1 infers."""
    dims = _onnx_ints(shape)
    if not allowzero:
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


_onnx_reshape._nnport_deps = ("_onnx_ints",)


def _onnx_unsqueeze(x: torch.Tensor, axes) -> torch.Tensor:
    """ONNX Unsqueeze: axes refer to the output's dims (negative counts from its end)."""
    ax = _onnx_ints(axes)
    rank = x.dim() + len(ax)
    for a in sorted(a + rank if a < 0 else a for a in ax):
        x = x.unsqueeze(a)
    return x


_onnx_unsqueeze._nnport_deps = ("_onnx_ints",)


def _onnx_slice(x: torch.Tensor, starts, ends, axes=None, steps=None) -> torch.Tensor:
    """ONNX Slice with run-time starts/ends/axes/steps (clamping as the spec says)."""
    st, en = _onnx_ints(starts), _onnx_ints(ends)
    ax = list(range(len(st))) if axes is None else _onnx_ints(axes)
    sp = [1] * len(st) if steps is None else _onnx_ints(steps)
    for s, e, a, k in zip(st, en, ax, sp):
        a = a + x.dim() if a < 0 else a
        d = x.shape[a]
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if k > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
            x = x.narrow(a, s, max(e - s, 0))[(slice(None),) * a + (slice(None, None, k),)]
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
            # element i of the flipped tensor is element d-1-i of x
            b, f = d - 1 - s, d - 1 - e
            x = x.flip(a).narrow(a, b, max(f - b, 0))[(slice(None),) * a + (slice(None, None, -k),)]
    return x


_onnx_slice._nnport_deps = ("_onnx_ints",)


def _onnx_pad(x: torch.Tensor, pads, mode: str = "constant", value: float = 0.0,
              axes=None) -> torch.Tensor:
    """ONNX Pad: pads = [begin per axis..., end per axis...]; modes constant/reflect/edge/wrap.
    Negative pads crop, before the positive ones pad (as onnxruntime does): a wrap or reflect
    pad reads the cropped data."""
    p = _onnx_ints(pads)
    ax = list(range(x.dim())) if axes is None else _onnx_ints(axes)
    n = len(ax)
    for i, a in enumerate(ax):
        a = a + x.dim() if a < 0 else a
        b, e = p[i], p[i + n]
        if b == 0 and e == 0:
            continue
        if mode == "constant":
            x = F.pad(x, [0, 0] * (x.dim() - 1 - a) + [b, e], value=value)
            continue
        if b < 0 or e < 0:
            start, stop = max(-b, 0), x.shape[a] - max(-e, 0)
            x = x.narrow(a, start, max(stop - start, 0))
            b, e = max(b, 0), max(e, 0)
            if b == 0 and e == 0:
                continue
        d = x.shape[a]
        idx = torch.arange(-b, d + e, device=x.device)
        if mode == "reflect":
            period = max(2 * (d - 1), 1)
            idx = idx.remainder(period)
            idx = torch.where(idx >= d, period - idx, idx)
        elif mode == "edge":
            idx = idx.clamp(0, d - 1)
        elif mode == "wrap":
            idx = idx.remainder(d)
        else:
            raise ValueError(f"unknown pad mode {mode!r}")
        x = x.index_select(a, idx)
    return x


_onnx_pad._nnport_deps = ("_onnx_ints",)


def _onnx_gather_nd(data: torch.Tensor, indices: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """ONNX GatherND: the last dim of ``indices`` indexes the first dims of ``data`` (after
    ``batch_dims`` shared leading dims)."""
    b = batch_dims
    k = indices.shape[-1]
    nb = 1
    for d in data.shape[:b]:
        nb *= d
    flat = data.reshape([nb] + list(data.shape[b:]))
    idx = indices.reshape(nb, -1, k).long()
    dims = torch.tensor(data.shape[b:b + k], dtype=torch.int64, device=idx.device)
    idx = torch.where(idx < 0, idx + dims, idx)
    batch = torch.arange(nb, device=idx.device).reshape(nb, 1).expand(nb, idx.shape[1])
    # one linear index into the k indexed dims (TorchScript has no tuple-of-tensors indexing)
    if k == 0:
        out = flat[batch]
    else:
        lin = idx[..., 0]
        span = data.shape[b]
        for j in range(1, k):
            lin = lin * data.shape[b + j] + idx[..., j]
            span *= data.shape[b + j]
        out = flat.reshape([nb, span] + list(data.shape[b + k:]))[batch, lin]
    return out.reshape(list(indices.shape[:-1]) + list(data.shape[b + k:]))


def _onnx_scatter_nd(data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor,
                     reduction: str = "none") -> torch.Tensor:
    """ONNX ScatterND with reduction none/add/mul/max/min."""
    k = indices.shape[-1]
    rest = list(data.shape[k:])
    idx = indices.reshape(-1, k).long()
    dims = torch.tensor(data.shape[:k], dtype=torch.int64, device=idx.device)
    idx = torch.where(idx < 0, idx + dims, idx)
    # linear index into the first k dims
    lin = torch.zeros(idx.shape[0], dtype=torch.int64, device=idx.device)
    for j in range(k):
        lin = lin * data.shape[j] + idx[:, j]
    n = 1
    for d in data.shape[:k]:
        n *= d
    out = data.clone().reshape([n] + rest)
    upd = updates.reshape([idx.shape[0]] + rest).to(out.dtype)
    if reduction == "none":
        out[lin] = upd
    elif reduction == "add":
        out.index_add_(0, lin, upd)
    else:
        how = {"mul": "prod", "max": "amax", "min": "amin"}[reduction]
        where = lin.reshape([-1] + [1] * len(rest)).expand(upd.shape)
        out.scatter_reduce_(0, where, upd, how, include_self=True)
    return out.reshape(data.shape)


def _onnx_split_sizes(d: int, n: int) -> List[int]:
    """Split-18 ``num_outputs``: chunks of ceil(d / n), the last one smaller."""
    c = -(-d // n)
    return [max(min(c, d - i * c), 0) for i in range(n)]


def _onnx_one_hot(indices: torch.Tensor, depth, values: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """ONNX OneHot: ``values`` = [off, on]; negative indices count from ``depth``."""
    d = int(depth)
    idx = indices.long()
    idx = torch.where(idx < 0, idx + d, idx)
    hot = idx.unsqueeze(-1) == torch.arange(d, device=idx.device)
    out = torch.where(hot, values[1], values[0])
    if axis != -1:
        out = out.movedim(-1, axis)
    return out


def _onnx_reverse_sequence(x: torch.Tensor, lens: torch.Tensor, time_axis: int = 0,
                           batch_axis: int = 1) -> torch.Tensor:
    """ONNX ReverseSequence: reverse the first lens[b] steps of each batch entry."""
    t = torch.arange(x.shape[time_axis], device=x.device).unsqueeze(1)  # (T, 1)
    n = lens.long().to(x.device).unsqueeze(0)  # (1, B)
    idx = torch.where(t < n, n - 1 - t, t)  # (T, B)
    if time_axis == 1:
        idx = idx.T
    idx = idx.reshape(list(idx.shape) + [1] * (x.dim() - 2)).expand(x.shape)
    return torch.gather(x, time_axis, idx)


def _onnx_cumulative(x: torch.Tensor, axis: int, exclusive: int = 0, reverse: int = 0,
                     prod: bool = False) -> torch.Tensor:
    """ONNX CumSum/CumProd with ``exclusive`` and ``reverse``."""
    if reverse:
        x = x.flip(axis)
    if exclusive:
        first = torch.ones_like(x.narrow(axis, 0, 1)) if prod else torch.zeros_like(
            x.narrow(axis, 0, 1))
        x = torch.cat([first, x.narrow(axis, 0, x.shape[axis] - 1)], dim=axis)
    y = torch.cumprod(x, axis, dtype=x.dtype) if prod else torch.cumsum(x, axis, dtype=x.dtype)
    if reverse:
        y = y.flip(axis)
    return y


def _onnx_unique(x: torch.Tensor, axis: Optional[int] = None, sorted: int = 1):
    """ONNX Unique: (values, first-occurrence indices, inverse indices, counts)."""
    if axis is None:
        x = x.reshape(-1)
        axis = 0
    y, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True,
                                      dim=axis)
    n = x.shape[axis]
    pos = torch.arange(n, device=x.device)
    first = torch.full((y.shape[axis],), n, dtype=torch.int64, device=x.device)
    first = first.scatter_reduce(0, inverse, pos, "amin")
    if not sorted:
        order = torch.argsort(first)
        y = y.index_select(axis, order)
        counts = counts[order]
        first = first[order]
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=x.device)
        inverse = rank[inverse]
    return y, first, inverse.reshape(-1), counts


def _onnx_center_crop_pad(x: torch.Tensor, shape, axes: Optional[List[int]] = None) -> torch.Tensor:
    """ONNX CenterCropPad: crop or zero-pad each listed axis to the target size, centred."""
    sizes = _onnx_ints(shape)
    ax = list(range(x.dim())) if axes is None else [a + x.dim() if a < 0 else a for a in axes]
    for a, s in zip(ax, sizes):
        d = x.shape[a]
        if s < d:
            x = x.narrow(a, (d - s) // 2, s)
        elif s > d:
            b = (s - d) // 2
            x = F.pad(x, [0, 0] * (x.dim() - 1 - a) + [b, s - d - b])
    return x


_onnx_center_crop_pad._nnport_deps = ("_onnx_ints",)


def _onnx_tensor_scatter(cache: torch.Tensor, update: torch.Tensor,
                         write_indices: Optional[torch.Tensor] = None, mode: str = "linear",
                         axis: int = -2) -> torch.Tensor:
    """ONNX TensorScatter: write ``update`` into ``cache`` along ``axis`` starting at
    write_indices[batch] (wrapping around in circular mode)."""
    axis = axis % cache.dim()
    n, m = cache.shape[axis], update.shape[axis]
    b = cache.shape[0]
    if write_indices is None:
        write_indices = torch.zeros(b, dtype=torch.int64, device=cache.device)
    pos = write_indices.long().reshape(b, 1) + torch.arange(m, device=cache.device)  # (B, m)
    if mode == "circular":
        pos = pos.remainder(n)
    shape = [b] + [1] * (axis - 1) + [m] + [1] * (cache.dim() - axis - 1)
    if axis == 0:
        shape = [m] + [1] * (cache.dim() - 1)
        pos = pos[0]
    idx = pos.reshape(shape).expand(update.shape)
    return cache.scatter(axis, idx, update)


def _onnx_to_e8m0(x: torch.Tensor, saturate: int = 1, round_mode: str = "up") -> torch.Tensor:
    """ONNX Cast to FLOAT8E8M0 (a bare power-of-two exponent) with its rounding modes."""
    bits = x.float().view(torch.int32)
    exp = (bits >> 23) & 0xFF
    normal = exp != 0xFF
    if round_mode == "up":
        inc = ((bits & 0x7FFFFF) != 0) & normal
    elif round_mode == "nearest":
        g = (bits & 0x400000) != 0
        r = (bits & 0x200000) != 0
        s = (bits & 0x1FFFFF) != 0
        inc = g & (r | s | (exp > 0)) & normal
    elif round_mode == "down":
        inc = torch.zeros_like(normal)
    else:
        raise ValueError(f"unknown round_mode {round_mode!r}")
    if saturate:
        inc = inc & (exp != 0xFE)
    exp = exp + inc.to(exp.dtype)
    return exp.to(torch.uint8).view(torch.float8_e8m0fnu)
