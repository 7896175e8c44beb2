"""Resize/Upsample -> Interp: 0=resize_type (1 nearest 2 bilinear 3 bicubic) 1=height_scale
2=width_scale 3=output_height 4=output_width 6=align_corner.  Scales are used when the output
follows the input size, so the .param stays shape-agnostic."""
from __future__ import annotations

import numpy as np

from ..registry import register
from .common import attrs_of


@register("Resize", "Upsample")
def resize(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    dec = lambda s: s.decode() if isinstance(s, bytes) else s
    mode = dec(a.get("mode", "nearest"))
    ctm = dec(a.get("coordinate_transformation_mode", "half_pixel"))
    if ctx.rank(x) not in (3, 4):
        ctx.fail("Resize is mapped to ncnn for (N, C, W) and (N, C, H, W) tensors")
    xs, ys = ctx.shape(x), ctx.shape(y)
    if xs[:2] != ys[:2]:
        ctx.fail("Resize of the batch or channel axis has no ncnn equivalent")
    typ = {"nearest": 1, "linear": 2, "cubic": 3}.get(mode)
    if typ is None:
        ctx.fail(f"Resize mode {mode!r}")
    align = 0
    if typ == 1:
        nm = dec(a.get("nearest_mode", "round_prefer_floor"))
        if node.op_type == "Resize" and (ctm != "asymmetric" or nm != "floor"):
            ctx.fail(f"nearest Resize with {ctm}/{nm} differs from ncnn's (asymmetric/floor)")
    elif ctm == "align_corners":
        align = 1
    elif ctm not in ("half_pixel", "pytorch_half_pixel"):
        ctx.fail(f"Resize coordinate_transformation_mode {ctm!r} has no ncnn equivalent")
    if typ == 3 and float(a.get("cubic_coeff_a", -0.75)) != -0.75:
        ctx.fail("bicubic Resize with cubic_coeff_a other than -0.75")
    p = {0: typ, 6: align}
    hv = ctx.probe.shape_varies.get(x.name)
    scales = None
    if node.op_type == "Resize" and len(node.inputs) > 2 and node.inputs[2] is not None \
            and node.inputs[2].name:
        sc = ctx.const(node.inputs[2])
        if sc is not None and np.size(sc) == ctx.rank(x):
            scales = [float(v) for v in np.ravel(sc)]
    if scales is not None:
        # coordinates follow the given scale (1.499 maps output 16 to input 16/1.499, not
        # 16*12/17): ncnn takes the scales and computes floor(in * scale) itself
        if ctx.rank(x) == 3:
            p[1], p[2] = 1.0, scales[2]
        else:
            p[1], p[2] = scales[2], scales[3]
        return ctx.per_channel(x, y, lambda src, dst: ctx.add("Interp", [src], [dst], p))
    if ctx.rank(x) == 3:  # (N, C, W): ncnn's Interp resizes the w of an (h, w) blob
        p[1] = 1.0
        if hv is not None and hv[2:].any():
            p[2] = ys[2] / xs[2]
        else:
            p[3], p[4] = 1, ys[2]
    elif hv is not None and hv[2:].any():
        p[1], p[2] = ys[2] / xs[2], ys[3] / xs[3]
    else:
        p[3], p[4] = ys[2], ys[3]
    ctx.per_channel(x, y, lambda src, dst: ctx.add("Interp", [src], [dst], p))
