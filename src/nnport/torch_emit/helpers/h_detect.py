"""Detection helpers: non-maximum suppression and RoiAlign in plain torch (no torchvision)."""
import math
from typing import Optional

import torch

__all__ = ["_box_suppression", "_nms", "_roi_align"]


def _box_suppression(boxes: torch.Tensor, iou_threshold: float, center_point_box: int):
    """(n, n) bool matrix: box i suppresses box j (their IoU is above the threshold)."""
    if center_point_box:
        xc, yc, w, h = boxes.unbind(-1)
        x_min, x_max = xc - w / 2, xc + w / 2
        y_min, y_max = yc - h / 2, yc + h / 2
    else:
        y1, x1, y2, x2 = boxes.unbind(-1)
        x_min, x_max = torch.minimum(x1, x2), torch.maximum(x1, x2)
        y_min, y_max = torch.minimum(y1, y2), torch.maximum(y1, y2)
    ix_min = torch.maximum(x_min[:, None], x_min[None, :])
    ix_max = torch.minimum(x_max[:, None], x_max[None, :])
    iy_min = torch.maximum(y_min[:, None], y_min[None, :])
    iy_max = torch.minimum(y_max[:, None], y_max[None, :])
    inter = (ix_max - ix_min) * (iy_max - iy_min)
    area = (x_max - x_min) * (y_max - y_min)
    union = area[:, None] + area[None, :] - inter
    ok = (ix_max > ix_min) & (iy_max > iy_min) & (inter > 0)
    ok = ok & (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    return ok & (inter / union > iou_threshold)


def _nms(boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou_threshold: float,
         score_threshold: Optional[float], center_point_box: int = 0) -> torch.Tensor:
    """ONNX NonMaxSuppression: rows of (batch, class, box) indices, int64 (n, 3)."""
    selected = []
    if max_per_class > 0:
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                s = scores[b, c]
                order = torch.sort(s, descending=True, stable=True).indices
                if score_threshold is not None:
                    order = order[s[order] > score_threshold]
                cand = boxes[b][order]
                suppress = _box_suppression(cand, iou_threshold, center_point_box)
                removed = torch.zeros(order.shape[0], dtype=torch.bool, device=boxes.device)
                kept = 0
                for i in range(order.shape[0]):
                    if bool(removed[i]):
                        continue
                    selected.append([b, c, int(order[i])])
                    kept += 1
                    if kept >= max_per_class:
                        break
                    removed = removed | suppress[i]
    if not selected:
        return torch.zeros(0, 3, dtype=torch.int64, device=boxes.device)
    return torch.tensor(selected, dtype=torch.int64, device=boxes.device)


_nms._nnport_deps = ("_box_suppression",)


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
