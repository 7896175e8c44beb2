"""Detection helpers: non-maximum suppression and RoiAlign in plain torch (no torchvision)."""
import math
from typing import List, Optional

import torch

__all__ = ["_box_suppression", "_nms", "_roi_align"]


def _nms_corners(boxes: torch.Tensor, center_point_box: int) -> torch.Tensor:
    """(n, 5) columns x_min, x_max, y_min, y_max, area of each box, computed as onnxruntime
    does (corners in either order; or center, width, height)."""
    if center_point_box:
        xc, yc, w, h = boxes.unbind(-1)
        x_min, x_max = xc - w / 2, xc + w / 2
        y_min, y_max = yc - h / 2, yc + h / 2
    else:
        y1, x1, y2, x2 = boxes.unbind(-1)
        x_min, x_max = torch.minimum(x1, x2), torch.maximum(x1, x2)
        y_min, y_max = torch.minimum(y1, y2), torch.maximum(y1, y2)
    return torch.stack([x_min, x_max, y_min, y_max, (x_max - x_min) * (y_max - y_min)], -1)


def _box_suppression(a: torch.Tensor, b: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Box a suppresses box b (rows of ``_nms_corners``, broadcast): their IoU is above the
    threshold, in onnxruntime's float arithmetic and order of tests."""
    ix_min = torch.maximum(a[..., 0], b[..., 0])
    ix_max = torch.minimum(a[..., 1], b[..., 1])
    iy_min = torch.maximum(a[..., 2], b[..., 2])
    iy_max = torch.minimum(a[..., 3], b[..., 3])
    inter = (ix_max - ix_min) * (iy_max - iy_min)
    union = a[..., 4] + b[..., 4] - inter
    ok = (ix_max > ix_min) & (iy_max > iy_min) & (inter > 0)
    ok = ok & (a[..., 4] > 0) & (b[..., 4] > 0) & (union > 0)
    return ok & (inter / union > iou_threshold)


def _nms_greedy(sup: torch.Tensor) -> torch.Tensor:
    """Which of m boxes (in score order) greedy NMS keeps, given ``sup[i, j]``: box i would
    suppress box j (only i < j used).  Box j is kept iff no kept box before it suppresses it:
    iterating that rule from "all kept" fixes one more leading box each round and stops at the
    unique solution; long chains finish with a sequential pass."""
    m = sup.shape[0]
    sup = torch.triu(sup, 1)
    keep = torch.ones(m, dtype=torch.bool, device=sup.device)
    for _ in range(8):
        new = ~(sup & keep[:, None]).any(0)
        if bool(torch.equal(new, keep)):
            return keep
        keep = new
    for i in range(m):
        if bool(keep[i]):
            keep = keep & ~sup[i]
    return keep


def _nms_class(c: torch.Tensor, max_keep: int, iou_threshold: float) -> torch.Tensor:
    """Positions (in score order) of the boxes greedy NMS keeps among ``c`` (rows of
    ``_nms_corners`` sorted by score), at most ``max_keep``.  Memory is linear in the number of
    boxes: they go in blocks of 128.  A block is checked against the boxes kept before it, up
    to 32 block boxes (neighbours in x) at a time, each against only the kept boxes whose x
    ranges can overlap its own (the kept boxes are held sorted by x_min, so those are a slice
    found by binary search), at most 2**20 pairs at a time; then among itself."""
    n = c.shape[0]
    dev = c.device
    kept = torch.zeros(0, dtype=torch.int64, device=dev)  # in selection order
    kt = c[:0].t()  # (5, kept) the kept boxes' columns, sorted by x_min
    kx = torch.zeros(0, dtype=torch.float64, device=dev)  # their x_min
    wmax = 0.0  # the widest kept box
    span = 1 << 15  # kept boxes per step (x 32 block boxes: 2**20 pairs)
    finite = bool(torch.isfinite(c).all())
    for s in range(0, n, 128):
        if kept.shape[0] >= max_keep:
            break
        blk = c[s:s + 128]
        b = blk.shape[0]
        alive = torch.ones(b, dtype=torch.bool, device=dev)
        k = kx.shape[0]
        if k > 0:
            by_x = torch.argsort(blk[:, 0])
            q_all = blk[by_x]
            los: List[int] = [0] * b
            his: List[int] = [k] * b  # infinities or NaN: every pair
            if finite:
                # a kept box whose x_min is <= x_min - widest ends before the query box starts;
                # one whose x_min is >= x_max starts after it ends: only the slice between
                # can intersect it
                lo_l: List[int] = torch.searchsorted(kx, q_all[:, 0].double() - wmax * 1.001,
                                                     right=True).tolist()
                hi_l: List[int] = torch.searchsorted(kx, q_all[:, 1].double(),
                                                     right=False).tolist()
                los, his = lo_l, hi_l
            j = 0
            single: List[int] = []
            while j < b:
                # neighbours in x share one dense step while that costs less than their own
                # slices plus the fixed cost of a step (about 4096 pairs)
                g, lo, hi = j + 1, los[j], max(his[j], los[j])
                while g < b and g - j < 32:
                    lo2, hi2 = min(lo, los[g]), max(hi, his[g])
                    if (g - j + 1) * (hi2 - lo2) > (g - j) * (hi - lo) + max(his[g] - los[g],
                                                                               0) + 4096:
                        break
                    lo, hi, g = lo2, hi2, g + 1
                if g - j == 1 and hi - lo <= span:
                    single.append(j)  # checked below, all together
                    j = g
                    continue
                q = q_all[j:g]
                hit = torch.zeros(g - j, dtype=torch.bool, device=dev)
                for w in range(lo, hi, span):
                    other = kt[:, w:min(hi, w + span)].t()
                    hit = hit | _box_suppression(other[None, :, :], q[:, None, :],
                                                 iou_threshold).any(1)
                sel = by_x[j:g]
                alive[sel] = alive[sel] & ~hit
                j = g
            if len(single) > 0:
                # lone boxes: one step over the concatenation of their slices
                rows = torch.tensor(single, dtype=torch.int64, device=dev)
                lo_t = torch.tensor(los, dtype=torch.int64, device=dev)[rows]
                cn = (torch.tensor(his, dtype=torch.int64, device=dev)[rows] - lo_t).clamp(min=0)
                tot = int(cn.sum())
                if tot > 0:
                    pair = torch.repeat_interleave(torch.arange(rows.shape[0], device=dev), cn)
                    pos = torch.arange(tot, device=dev) - torch.repeat_interleave(
                        torch.cumsum(cn, 0) - cn, cn)
                    other = kt[:, lo_t[pair] + pos].t()
                    hit = _box_suppression(other, q_all[rows[pair]], iou_threshold)
                    alive[by_x[rows[pair[hit]]]] = False
        idx = alive.nonzero().reshape(-1)
        if idx.numel() == 0:
            continue
        sub = blk[idx]
        keep = _nms_greedy(_box_suppression(sub[:, None, :], sub[None, :, :], iou_threshold))
        new = idx[keep]
        if new.numel() == 0:
            continue
        kept = torch.cat([kept, new + s])
        # merge the new boxes into the x_min-sorted kept set: O(kept), no re-sort
        nc = blk[new]
        nx, o = torch.sort(nc[:, 0].double(), stable=True)
        nc = nc[o]
        m = nc.shape[0]
        at = torch.searchsorted(kx, nx, right=True) + torch.arange(m, device=dev)
        old = torch.ones(k + m, dtype=torch.bool, device=dev)
        old[at] = False
        merged = c.new_empty((5, k + m))
        merged[:, at] = nc.t()
        merged[:, old] = kt
        mx = torch.empty(k + m, dtype=torch.float64, device=dev)
        mx[at] = nx
        mx[old] = kx
        kt, kx = merged, mx
        if finite:
            wmax = max(wmax, float((nc[:, 1].double() - nc[:, 0].double()).max()))
    return kept[:max_keep]


def _nms(boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou_threshold: float,
         score_threshold: Optional[float], center_point_box: int = 0) -> torch.Tensor:
    """ONNX NonMaxSuppression: rows of (batch, class, box) indices, int64 (n, 3).  Exact
    (onnxruntime's selection: score order, ties by box index, its IoU arithmetic), in memory
    linear in the number of boxes."""
    out = [torch.zeros(0, 3, dtype=torch.int64, device=boxes.device)]
    if max_per_class > 0:
        for b in range(scores.shape[0]):
            corners = _nms_corners(boxes[b], center_point_box)
            for c in range(scores.shape[1]):
                s = scores[b, c]
                order = torch.sort(s, descending=True, stable=True).indices
                if score_threshold is not None:
                    order = order[s[order] > score_threshold]
                keep = order[_nms_class(corners[order], max_per_class, iou_threshold)]
                col = torch.full_like(keep, b)
                out.append(torch.stack([col, torch.full_like(keep, c), keep], 1))
    return torch.cat(out)


_nms._nnport_deps = ("_nms_corners", "_box_suppression", "_nms_greedy", "_nms_class")
_nms_class._nnport_deps = ("_box_suppression", "_nms_greedy")


def _roi_align(x: torch.Tensor, rois: torch.Tensor, batch_indices: torch.Tensor, out_h: int,
               out_w: int, sampling_ratio: int, spatial_scale: float, mode: str,
               half_pixel: bool) -> torch.Tensor:
    """ONNX RoiAlign: bilinear samples on a regular grid in each bin, averaged (or max)."""
    n_rois = rois.shape[0]
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    out = x.new_zeros(n_rois, channels, out_h, out_w)
    offset = 0.5 if half_pixel else 0.0
    box = (rois.to(torch.float32) * spatial_scale - offset).tolist()
    for r in range(n_rois):
        start_w, start_h, end_w, end_h = box[r]
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not half_pixel:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_h / out_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_w / out_w))
        if grid_h <= 0 or grid_w <= 0:
            continue
        count = max(grid_h * grid_w, 1)

        def axis(start: float, bin_size: float, n_out: int, grid: int, size: int):
            i = torch.arange(grid, dtype=torch.float64)
            p = torch.arange(n_out, dtype=torch.float64)
            pos = (start + p[:, None] * bin_size + (i[None, :] + 0.5) * bin_size / grid)
            pos = pos.reshape(-1)
            valid = (pos >= -1.0) & (pos <= size)
            pos = pos.clamp(min=0)
            low = pos.floor().long()
            edge = low >= size - 1
            low = torch.where(edge, torch.full_like(low, size - 1), low)
            high = torch.where(edge, low, low + 1)
            pos = torch.where(edge, low.to(pos.dtype), pos)
            frac = pos - low
            w_high = torch.where(valid, frac, torch.zeros_like(frac))
            w_low = torch.where(valid, 1 - frac, torch.zeros_like(frac))
            return low, high, w_low.to(x.dtype), w_high.to(x.dtype)

        y_lo, y_hi, wy_lo, wy_hi = axis(start_h, bin_h, out_h, grid_h, height)
        x_lo, x_hi, wx_lo, wx_hi = axis(start_w, bin_w, out_w, grid_w, width)
        img = x[int(batch_indices[r])]
        y_lo, y_hi, x_lo, x_hi = (t.to(x.device) for t in (y_lo, y_hi, x_lo, x_hi))
        wy_lo, wy_hi, wx_lo, wx_hi = (t.to(x.device) for t in (wy_lo, wy_hi, wx_lo, wx_hi))
        terms = [
            img[:, y_lo][:, :, x_lo] * (wy_lo[:, None] * wx_lo[None, :]),
            img[:, y_lo][:, :, x_hi] * (wy_lo[:, None] * wx_hi[None, :]),
            img[:, y_hi][:, :, x_lo] * (wy_hi[:, None] * wx_lo[None, :]),
            img[:, y_hi][:, :, x_hi] * (wy_hi[:, None] * wx_hi[None, :]),
        ]
        if mode == "max":
            v = torch.stack(terms).amax(dim=0)
            v = v.reshape(channels, out_h, grid_h, out_w, grid_w).amax(dim=(2, 4))
        else:
            v = terms[0] + terms[1] + terms[2] + terms[3]
            v = v.reshape(channels, out_h, grid_h, out_w, grid_w).sum(dim=(2, 4)) / count
        out[r] = v
    return out
