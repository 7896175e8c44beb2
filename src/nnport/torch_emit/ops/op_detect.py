"""Detection ops: NonMaxSuppression and RoiAlign, through plain-torch helpers (no torchvision)."""
from __future__ import annotations

from ..emitter import Arg, Ctx, register


def _scalar(ctx: Ctx, arg: Arg | None, kind: str, default):
    """A scalar input as a Python literal when constant, else a run-time conversion."""
    if arg is None:
        return ctx.lit(default) if default is not None else "None"
    arr = ctx.const(arg)
    if arr is not None:
        if arr.size == 0:
            return ctx.lit(default) if default is not None else "None"
        v = arr.reshape(-1)[0].item()
        return ctx.lit(int(v)) if kind == "int" else ctx.lit(float(v), ctx.dtype(arg))
    return f"{kind}({arg}.reshape(-1)[0])"


@register("NonMaxSuppression", (10, 11))
def non_max_suppression(ctx: Ctx, boxes: Arg, scores: Arg,
                        max_output_boxes_per_class: Arg | None = None,
                        iou_threshold: Arg | None = None, score_threshold: Arg | None = None, *,
                        center_point_box: int = 0):
    fn = ctx.helper("_nms")
    max_out = _scalar(ctx, max_output_boxes_per_class, "int", 0)
    iou = _scalar(ctx, iou_threshold, "float", 0.0)
    score = _scalar(ctx, score_threshold, "float", None)
    return (f"{fn}({boxes}, {scores}, max_per_class={max_out}, iou_threshold={iou}, "
            f"score_threshold={score}, center_point_box={int(center_point_box)})")


def _roi_align(ctx, X, rois, batch_indices, mode, output_height, output_width, sampling_ratio,
               spatial_scale, half_pixel):
    if mode not in ("avg", "max"):
        ctx.fail(f"mode {mode!r} is not supported")
    fn = ctx.helper("_roi_align")
    return (f"{fn}({X}, {rois}, {batch_indices}, out_h={int(output_height)}, "
            f"out_w={int(output_width)}, sampling_ratio={int(sampling_ratio)}, "
            f"spatial_scale={ctx.lit(float(spatial_scale), ctx.dtype(X))}, mode={mode!r}, "
            f"half_pixel={half_pixel})")


@register("RoiAlign", (10,))
def roi_align10(ctx: Ctx, X: Arg, rois: Arg, batch_indices: Arg, *, mode: str = "avg",
                output_height: int = 1, output_width: int = 1, sampling_ratio: int = 0,
                spatial_scale: float = 1.0):
    return _roi_align(ctx, X, rois, batch_indices, mode, output_height, output_width,
                      sampling_ratio, spatial_scale, False)


@register("RoiAlign", (16, 22))
def roi_align(ctx: Ctx, X: Arg, rois: Arg, batch_indices: Arg, *,
              coordinate_transformation_mode: str = "half_pixel", mode: str = "avg",
              output_height: int = 1, output_width: int = 1, sampling_ratio: int = 0,
              spatial_scale: float = 1.0):
    if coordinate_transformation_mode not in ("half_pixel", "output_half_pixel"):
        ctx.fail(f"coordinate_transformation_mode {coordinate_transformation_mode!r}")
    return _roi_align(ctx, X, rois, batch_indices, mode, output_height, output_width,
                      sampling_ratio, spatial_scale,
                      coordinate_transformation_mode == "half_pixel")
