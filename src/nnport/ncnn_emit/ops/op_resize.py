"""Resize/Upsample -> Interp: 0=resize_type (1 nearest 2 bilinear 3 bicubic) 1=height_scale
2=width_scale 3=output_height 4=output_width 6=align_corner.  Scales are used when the output
follows the input size, so the .param stays shape-agnostic.

Upsample (7: scales attribute, 9: scales input) and Resize 10 (X, scales) have no
coordinate_transformation_mode: their coordinates are asymmetric and nearest rounds down, which
is ncnn's nearest; their linear mode has no ncnn equivalent (ncnn's bilinear is half_pixel or
align_corners).  Resize 11 takes (X, roi, scales, sizes) with the modes as attributes, 13 makes
roi and scales optional, 18 adds antialias (refused where it changes the result), axes and
keep_aspect_ratio_policy (the output shape is read either way), 19 half_pixel_symmetric
(refused).  Upsample 10 is deprecated: onnxruntime refuses a model that uses it, and so does
this emitter, by name.  GridSample -> GridSample."""
from __future__ import annotations

import numpy as np

from ..registry import register
from .common import attrs_of, reshape_params


@register({"Resize": (10, 11, 13, 18, 19), "Upsample": (7, 9)})
def resize(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    dec = lambda s: s.decode() if isinstance(s, bytes) else s
    mode = dec(a.get("mode", "nearest"))
    # the scales input: Resize 11 on (X, roi, scales, sizes), Resize 10 and Upsample 9 (X, scales)
    old = node.op_type == "Upsample" or ctx.model.opset_imports.get("", 11) < 11
    scales_at = 1 if old else 2
    ctm = "asymmetric" if old else dec(a.get("coordinate_transformation_mode", "half_pixel"))
    if int(a.get("exclude_outside", 0)) and mode == "cubic":
        ctx.fail("bicubic Resize with exclude_outside=1 has no ncnn equivalent")
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
        nm = "floor" if old else dec(a.get("nearest_mode", "round_prefer_floor"))
        if ctm != "asymmetric" or nm != "floor":
            ctx.fail(f"nearest Resize with {ctm}/{nm} differs from ncnn's (asymmetric/floor)")
    elif ctm == "align_corners":
        align = 1
    elif old:
        ctx.fail(f"{node.op_type} of opset {ctx.model.opset_imports.get('', 0)} in mode {mode!r} "
                 "(asymmetric coordinates) has no ncnn equivalent")
    elif ctm not in ("half_pixel", "pytorch_half_pixel"):
        ctx.fail(f"Resize coordinate_transformation_mode {ctm!r} has no ncnn equivalent")
    if typ == 3 and float(a.get("cubic_coeff_a", -0.75)) != -0.75:
        ctx.fail("bicubic Resize with cubic_coeff_a other than -0.75")
    if int(a.get("antialias", 0)) and typ != 1 and any(o < i for i, o in zip(xs[2:], ys[2:])):
        ctx.fail("antialiased Resize that shrinks has no ncnn equivalent")
    p = {0: typ, 6: align}
    hv = ctx.probe.shape_varies.get(x.name)
    scales = None
    if len(node.inputs) > scales_at and node.inputs[scales_at] is not None \
            and node.inputs[scales_at].name:
        sc = ctx.const(node.inputs[scales_at])
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


@register("Upsample", 10)
def upsample_deprecated(ctx, node):
    ctx.fail("Upsample is deprecated from opset 10 (Resize replaces it); a model of opset 10 or "
             "later may not use it")


_GRID_MODE = {"bilinear": 1, "linear": 1, "nearest": 2, "bicubic": 3, "cubic": 3}
_GRID_PAD = {"zeros": 1, "border": 2, "reflection": 3}


@register("GridSample", (16, 20, 22))
def grid_sample(ctx, node):
    """GridSample (``F.grid_sample``) -> GridSample: 0=sample_type (1 bilinear 2 nearest
    3 bicubic) 1=padding_mode (1 zeros 2 border 3 reflection) 2=align_corner
    3=permute_fusion.  Bottoms: one (C, [D,] H, W) sample and its grid, laid out as ONNX's
    without the batch, (Hout, Wout, 2) or (Dout, Hout, Wout, 3); with permute_fusion=1 the grid
    is read as (2, Hout, Wout) / (3, Dout, Hout, Wout), so a Transpose that made ONNX's layout
    from that one is left out.  A batch of N runs sample by sample."""
    x, grid, y = node.inputs[0], node.inputs[1], node.outputs[0]
    a = attrs_of(node)
    dec = lambda s: s.decode() if isinstance(s, bytes) else s
    mode, pad = dec(a.get("mode", "bilinear")), dec(a.get("padding_mode", "zeros"))
    r = ctx.rank(x)
    if r not in (4, 5):
        ctx.fail(f"GridSample on a rank-{r} tensor has no ncnn equivalent (2-D and 3-D do)")
    if mode not in _GRID_MODE or pad not in _GRID_PAD:
        ctx.fail(f"GridSample mode {mode!r} / padding_mode {pad!r} has no ncnn equivalent")
    if r == 5 and mode in ("bicubic", "cubic"):
        ctx.fail("3-D bicubic GridSample has no ncnn equivalent")
    p = {0: _GRID_MODE[mode], 1: _GRID_PAD[pad], 2: int(a.get("align_corners", 0)), 3: 0}
    xs = ctx.shape(x)
    if ctx.drop(x) and ctx.drop(grid):
        src = grid.producer()
        perm = [int(v) for v in attrs_of(src).get("perm", [])] \
            if src is not None and src.op_type == "Transpose" else []
        gblob = None
        if perm == [0] + list(range(2, r)) + [1] and ctx.drop(src.inputs[0]):
            gblob, p[3] = ctx.blob(src.inputs[0]), 1
        ctx.add("GridSample", [ctx.blob(x), gblob or ctx.blob(grid)], [ctx.out(y, True)], p)
        return
    if r != 4 or ctx.drop(x) or ctx.drop(grid):
        ctx.fail(f"GridSample on a rank-{r} batch of {xs[0]} is not mapped to ncnn "
                 "(2-D batches are)")
    gs, ys, parts = ctx.shape(grid), ctx.shape(y), []
    for i in range(xs[0]):
        one = []
        for v, shp in ((x, xs), (grid, gs)):
            c = ctx.add("Crop", [ctx.blob(v)], [ctx.g.unique(f"{v.name}_s{i}")],
                        {9: [i], 10: [i + 1], 11: [0]})
            one.append(ctx.add("Reshape", [c], [ctx.g.unique(f"{v.name}_s{i}_in")],
                               reshape_params(ctx, shp[1:], None)))
        res = ctx.add("GridSample", one, [ctx.g.unique(f"{y.name}_s{i}_out")], p)
        parts.append(ctx.add("Reshape", [res], [ctx.g.unique(f"{y.name}_s{i}_back")],
                             reshape_params(ctx, (1,) + tuple(ys[1:]), None)))
    ctx.add("Concat", parts, [ctx.out(y, False)], {0: 0})
