"""Resampling: Resize, Upsample, GridSample, AffineGrid, Col2Im.

Resize prints as ``F.interpolate`` when torch computes exactly what ONNX asks for (nearest
upsampling by powers of two, linear half_pixel / align_corners, cubic half_pixel with A=-0.75);
every other combination calls the ``_onnx_resize`` helper, which follows the spec formulas
one axis at a time.
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register

_TORCH_LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}


def _const_list(ctx: Ctx, arg: Arg | None):
    """A constant input as a python list; [] for an empty tensor; None when not constant."""
    if arg is None:
        return []
    arr = ctx.const(arg)
    if arr is None:
        return None
    return arr.reshape(-1).tolist()


def _is_pow2(v: float) -> bool:
    return v >= 1 and float(v).is_integer() and (int(v) & (int(v) - 1)) == 0


def _interp_args(ctx: Ctx, values: list, kind: str) -> str:
    """``size=...`` / ``scale_factor=...`` for F.interpolate (one value when all are equal)."""
    if kind == "size":
        vals, name = [int(v) for v in values], "size"
    else:
        vals, name = [float(v) for v in values], "scale_factor"
    return f"{name}={ctx.lit(vals[0] if len(set(vals)) == 1 else vals)}"


def _fast_path(ctx: Ctx, X: Arg, rank, shape, scales, sizes, mode, ctm, nearest_mode,
               cubic_a, exclude_outside, antialias, policy):
    """``F.interpolate(...)`` when it matches ONNX exactly, else None.  ``scales``/``sizes``
    are full-rank python lists (or None)."""
    if rank not in _TORCH_LINEAR or policy != "stretch" or ctm == "tf_crop_and_resize":
        return None
    dt = ctx.dtype(X)
    if dt is not None and not dt.is_floating_point() and not (
            mode == "nearest" and dt == ir.DataType.UINT8):
        return None  # F.interpolate's linear/cubic kernels need float input
    # batch and channel dims must stay as they are
    if scales is not None:
        if any(float(s) != 1.0 for s in scales[:2]):
            return None
        spatial = [float(s) for s in scales[2:]]
    else:
        if shape is None or any(shape[i] is None or shape[i] != sizes[i] for i in range(2)):
            return None
        in_sp = shape[2:]
        spatial = None
        if all(d is not None and d > 0 for d in in_sp):
            spatial = [sizes[2 + i] / in_sp[i] for i in range(rank - 2)]
    if mode == "nearest":
        if spatial is None or not all(_is_pow2(s) for s in spatial):
            return None
        ok = (ctm == "asymmetric" and nearest_mode in ("floor", "simple")) or (
            ctm in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric")
            and nearest_mode in ("round_prefer_floor", "round_prefer_ceil"))
        if not ok:
            return None
        return f"F.interpolate({X}, {_interp_args(ctx, spatial, 'scale')}, mode='nearest')"
    if antialias and (spatial is None or any(s < 1 for s in spatial)):
        return None
    if mode == "cubic" and (rank != 4 or exclude_outside or cubic_a != -0.75):
        return None
    if ctm == "align_corners":
        ac = True
    elif ctm == "half_pixel":
        ac = False
    elif ctm in ("pytorch_half_pixel", "half_pixel_symmetric"):
        # identical to half_pixel when every output length is > 1 and L*scale is whole
        if spatial is None or shape is None or any(d is None for d in shape[2:]):
            return None
        outs = [d * s for d, s in zip(shape[2:], spatial)]
        if any(o <= 1 or not float(o).is_integer() for o in outs):
            return None
        ac = False
    else:
        return None
    tmode = "bicubic" if mode == "cubic" else _TORCH_LINEAR[rank]
    if scales is not None:
        how = _interp_args(ctx, spatial, "scale")
    else:
        how = _interp_args(ctx, sizes[2:], "size")
    return f"F.interpolate({X}, {how}, mode={tmode!r}, align_corners={ac})"


def _full_rank(vals, axes, rank, fill):
    out = [fill(i) for i in range(rank)]
    for v, a in zip(vals, axes):
        out[a] = v
    return out


def _emit_resize(ctx: Ctx, X: Arg, roi: Arg | None, scales: Arg | None, sizes: Arg | None, *,
                 mode, ctm, nearest_mode, cubic_a=-0.75, exclude_outside=0,
                 extrapolation_value=0.0, antialias=0, axes=None, policy="stretch"):
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear", "cubic"):
        ctx.fail(f"mode {mode!r} is not supported")
    rank = ctx.rank(X)
    shape = ctx.shape(X)
    sc = _const_list(ctx, scales)
    sz = _const_list(ctx, sizes)
    use_sizes = sizes is not None and (sz is None or len(sz) > 0)
    if not use_sizes and (scales is None or sc == []):
        ctx.fail("neither scales nor sizes is given")
    if axes is not None and rank is not None:
        axes = [a % rank for a in axes]
    # fast path: constant scales/sizes over all dims (or spatial axes)
    if rank is not None:
        ax = axes if axes is not None else list(range(rank))
        full_sc = full_sz = None
        if use_sizes and sz is not None and len(sz) == len(ax) and shape is not None:
            if all(shape[i] is not None for i in range(rank) if i not in ax):
                full_sz = _full_rank([int(v) for v in sz], ax, rank, lambda i: shape[i])
        elif not use_sizes and sc is not None and len(sc) == len(ax):
            full_sc = _full_rank(sc, ax, rank, lambda i: 1.0)
        if full_sc is not None or full_sz is not None:
            fast = _fast_path(ctx, X, rank, shape, full_sc, full_sz, mode, ctm, nearest_mode,
                              cubic_a, exclude_outside, antialias, policy)
            if fast is not None:
                return fast
        elif use_sizes and sz is None and mode != "nearest" and axes is None and rank == 4 \
                and policy == "stretch" and ctm in ("half_pixel", "align_corners") \
                and not antialias and (mode == "linear" or (not exclude_outside
                                                            and cubic_a == -0.75)):
            # sizes computed at run time (e.g. the size of another feature map)
            tmode = "bicubic" if mode == "cubic" else "bilinear"
            ac = ctm == "align_corners"
            return (f"F.interpolate({X}, size={sizes}.tolist()[2:], mode={tmode!r}, "
                    f"align_corners={ac})")
    fn = ctx.helper("_onnx_resize")
    if use_sizes:
        size_src = ctx.lit([int(v) for v in sz]) if sz is not None else f"{sizes}.tolist()"
        scale_src = "None"
    else:
        size_src = "None"
        scale_src = ctx.lit([float(v) for v in sc]) if sc is not None else f"{scales}.tolist()"
    args = [str(X), size_src, scale_src]
    kw = []
    if axes is not None:
        kw.append(f"axes={ctx.lit(list(axes))}")
    kw.append(f"mode={mode!r}")
    kw.append(f"coord_mode={ctm!r}")
    if mode == "nearest":
        kw.append(f"nearest_mode={nearest_mode!r}")
    if mode == "cubic":
        kw.append(f"cubic_a={ctx.lit(float(cubic_a))}")
    if exclude_outside:
        kw.append("exclude_outside=True")
    if antialias:
        kw.append("antialias=True")
    if ctm == "tf_crop_and_resize":
        kw.append(f"extrapolation_value={ctx.lit(float(extrapolation_value))}")
        rc = _const_list(ctx, roi)
        if roi is None or rc == []:
            ctx.fail("tf_crop_and_resize needs roi")
        kw.append(f"roi={ctx.lit([float(v) for v in rc]) if rc is not None else f'{roi}.tolist()'}")
    if policy != "stretch":
        kw.append(f"aspect_policy={policy!r}")
    return f"{fn}({', '.join(args + kw)})"


@register("Resize", (10,))
def resize10(ctx: Ctx, X: Arg, scales: Arg, *, mode: str = "nearest"):
    return _emit_resize(ctx, X, None, scales, None, mode=mode, ctm="asymmetric",
                        nearest_mode="simple")


@register("Resize", (11, 13, 18, 19))
def resize(ctx: Ctx, X: Arg, roi: Arg | None = None, scales: Arg | None = None,
           sizes: Arg | None = None, *, antialias: int = 0, axes=None,
           coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
           exclude_outside: int = 0, extrapolation_value: float = 0.0,
           keep_aspect_ratio_policy: str = "stretch", mode: str = "nearest",
           nearest_mode: str = "round_prefer_floor"):
    return _emit_resize(ctx, X, roi, scales, sizes, mode=mode,
                        ctm=coordinate_transformation_mode, nearest_mode=nearest_mode,
                        cubic_a=cubic_coeff_a, exclude_outside=exclude_outside,
                        extrapolation_value=extrapolation_value, antialias=antialias,
                        axes=axes, policy=keep_aspect_ratio_policy)


@register("Upsample", (1,))
def upsample1(ctx: Ctx, X: Arg, *, mode: str = "nearest", height_scale: float = 1.0,
              width_scale: float = 1.0):
    rank = ctx.rank(X)
    if rank != 4:
        ctx.fail("Upsample-1 needs a 4-D input")
    return _emit_resize_list(ctx, X, [1.0, 1.0, float(height_scale), float(width_scale)], mode)


def _emit_resize_list(ctx: Ctx, X: Arg, scales: list, mode: str):
    """Resize-10 semantics with a constant list of scales."""
    if mode == "bilinear":
        mode = "linear"
    rank = ctx.rank(X)
    if rank is not None and len(scales) == rank:
        fast = _fast_path(ctx, X, rank, ctx.shape(X), scales, None, mode, "asymmetric",
                          "simple", -0.75, 0, 0, "stretch")
        if fast is not None:
            return fast
    fn = ctx.helper("_onnx_resize")
    return (f"{fn}({X}, None, {ctx.lit([float(s) for s in scales])}, mode={mode!r}, "
            "coord_mode='asymmetric', nearest_mode='simple')")


@register("Upsample", (7,))
def upsample7(ctx: Ctx, X: Arg, *, mode: str = "nearest", scales=None):
    if scales is None:
        ctx.fail("Upsample-7 needs the scales attribute")
    return _emit_resize_list(ctx, X, [float(s) for s in scales], mode)


@register("Upsample", (9,))
def upsample9(ctx: Ctx, X: Arg, scales: Arg, *, mode: str = "nearest"):
    return _emit_resize(ctx, X, None, scales, None, mode=mode, ctm="asymmetric",
                        nearest_mode="simple")


# Upsample-10 only deprecates the op; semantics are those of 9.
register("Upsample", (10,))(upsample9)


# ---- GridSample / AffineGrid --------------------------------------------------------------
_GS_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest",
             "cubic": "bicubic", "bicubic": "bicubic"}


@register("GridSample", (16, 20, 22))
def grid_sample(ctx: Ctx, X: Arg, grid: Arg, *, align_corners: int = 0,
                mode: str | None = None, padding_mode: str = "zeros"):
    if mode is None:
        mode = "bilinear" if ctx.opset < 20 else "linear"
    tmode = _GS_MODES.get(mode)
    if tmode is None:
        ctx.fail(f"mode {mode!r} is not supported")
    rank = ctx.rank(X)
    if rank == 3:
        # 1-D sampling: a 2-D grid_sample over an image of height 1, sampled at its centre row
        g = ctx.tmp("grid2d")
        ctx.line(f"{g} = torch.stack([{grid}[..., 0], torch.zeros_like({grid}[..., 0])], "
                 "dim=-1).unsqueeze(1)")
        return (f"F.grid_sample({X}.unsqueeze(2), {g}, mode={tmode!r}, "
                f"padding_mode={padding_mode!r}, align_corners={bool(align_corners)}).squeeze(2)")
    if rank is not None and rank not in (4, 5):
        ctx.fail(f"{rank}-D GridSample has no torch equivalent")
    if rank == 5 and tmode == "bicubic":
        ctx.fail("cubic GridSample on 5-D input has no torch equivalent")
    return (f"F.grid_sample({X}, {grid}, mode={tmode!r}, padding_mode={padding_mode!r}, "
            f"align_corners={bool(align_corners)})")


@register("AffineGrid", (20,))
def affine_grid(ctx: Ctx, theta: Arg, size: Arg, *, align_corners: int = 0):
    sz = ctx.const(size)
    size_src = ctx.lit([int(v) for v in sz.reshape(-1)]) if sz is not None else f"{size}.tolist()"
    return f"F.affine_grid({theta}, {size_src}, align_corners={bool(align_corners)})"


@register("Col2Im", (18,))
def col2im(ctx: Ctx, input: Arg, image_shape: Arg, block_shape: Arg, *, dilations=None,
           pads=None, strides=None):
    img = ctx.const(image_shape)
    blk = ctx.const(block_shape)
    if blk is not None:
        blk = [int(v) for v in blk.reshape(-1)]
        nd = len(blk)
        blk_src = ctx.lit(blk)
    else:
        bshape = ctx.shape(block_shape)
        if not bshape or bshape[0] is None:
            ctx.fail("the length of block_shape must be known")
        nd = bshape[0]
        blk_src = f"{block_shape}.tolist()"
    dilations = list(dilations or [1] * nd)
    strides = list(strides or [1] * nd)
    pads = list(pads or [0] * (2 * nd))
    img_src = ctx.lit([int(v) for v in img.reshape(-1)]) if img is not None \
        else f"{image_shape}.tolist()"
    if nd == 2 and pads[:2] == pads[2:] and blk is not None:
        return (f"F.fold({input}, output_size={img_src}, kernel_size={ctx.lit(blk)}, "
                f"dilation={ctx.lit(dilations)}, padding={ctx.lit(pads[:2])}, "
                f"stride={ctx.lit(strides)})")
    fn = ctx.helper("_col2im")
    return (f"{fn}({input}, {img_src}, {blk_src}, {ctx.lit(dilations)}, {ctx.lit(pads)}, "
            f"{ctx.lit(strides)})")
