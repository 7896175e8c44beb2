"""Pooling: MaxPool, AveragePool, LpPool, their Global forms, MaxUnpool, MaxRoiPool.

Pools torch expresses exactly print as ``F.max_pool2d(...)`` / ``F.avg_pool2d(...)``; asymmetric
or oversized pads, dilated average pooling, run-time SAME padding and MaxPool's Indices output
use the plain-torch helpers in ``helpers/h_cnn.py``.
"""
from __future__ import annotations

from ..emitter import Arg, Ctx, register
from .op_conv import _defaults, _lst, _tup, resolve_pads


def _used(ctx: Ctx, i: int) -> bool:
    outs = ctx.node.outputs
    return i < len(outs) and (bool(outs[i].uses()) or outs[i].is_graph_output())


def _pads_expr(ctx: Ctx, X: Arg, mode, p, kernel, strides, dilations) -> str:
    if mode == "same":
        fn = ctx.helper("_same_pads")
        return (f"{fn}(list({X}.shape[2:]), {_lst(kernel)}, {_lst(strides)}, "
                f"{_lst(dilations)}, {p})")
    return _lst(p)


def _setup(ctx, X, kernel_shape, strides, dilations, pads, auto_pad):
    if not kernel_shape:
        ctx.fail("kernel_shape is required")
    kernel = [int(k) for k in kernel_shape]
    n = len(kernel)
    if n not in (1, 2, 3):
        ctx.fail(f"{n}-d pooling is not supported")
    strides, dilations = _defaults(n, strides, dilations)
    mode, p = resolve_pads(ctx, X, kernel, strides, dilations, pads, auto_pad)
    return kernel, n, strides, dilations, mode, p


def _torch_sym(mode, p, n, kernel, dilations) -> list | None:
    """Symmetric padding torch's pool functions accept, or None."""
    if mode != "static" or p[:n] != p[n:]:
        return None
    for i in range(n):
        if p[i] > ((kernel[i] - 1) * dilations[i] + 1) // 2:
            return None
    return p[:n]


@register("MaxPool", (1, 8, 10, 11, 12, 22))
def max_pool(ctx: Ctx, X: Arg, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations=None,
             kernel_shape=None, pads=None, storage_order: int = 0, strides=None):
    kernel, n, strides, dilations, mode, p = _setup(ctx, X, kernel_shape, strides, dilations,
                                                    pads, auto_pad)
    sym = _torch_sym(mode, p, n, kernel, dilations)
    if sym is not None and not _used(ctx, 1):
        kw = [f"stride={_tup(strides)}"]
        if any(sym):
            kw.append(f"padding={_tup(sym)}")
        if dilations != [1] * n:
            kw.append(f"dilation={_tup(dilations)}")
        if ceil_mode:
            kw.append("ceil_mode=True")
        return f"F.max_pool{n}d({X}, {_tup(kernel)}, {', '.join(kw)})"
    fn = ctx.helper("_max_pool_nd")
    pe = _pads_expr(ctx, X, mode, p, kernel, strides, dilations)
    order = int(storage_order) if _used(ctx, 1) else -1
    call = (f"{fn}({X}, {_lst(kernel)}, {_lst(strides)}, {_lst(dilations)}, {pe}, "
            f"{bool(ceil_mode)}, {order})")
    if len(ctx.node.outputs) == 1:
        return f"{call}[0]"
    return call


@register("AveragePool", (1, 7, 10, 11, 19, 22))
def average_pool(ctx: Ctx, X: Arg, *, auto_pad: str = "NOTSET", ceil_mode: int = 0,
                 count_include_pad: int = 0, dilations=None, kernel_shape=None, pads=None,
                 strides=None):
    kernel, n, strides, dilations, mode, p = _setup(ctx, X, kernel_shape, strides, dilations,
                                                    pads, auto_pad)
    sym = _torch_sym(mode, p, n, kernel, dilations)
    if sym is not None and dilations == [1] * n and all(
            sym[i] <= kernel[i] // 2 for i in range(n)):
        kw = [f"stride={_tup(strides)}"]
        if any(sym):
            kw.append(f"padding={_tup(sym)}")
        if ceil_mode:
            kw.append("ceil_mode=True")
        if any(sym) or ceil_mode:
            kw.append(f"count_include_pad={bool(count_include_pad)}")
        return f"F.avg_pool{n}d({X}, {_tup(kernel)}, {', '.join(kw)})"
    fn = ctx.helper("_avg_pool_nd")
    pe = _pads_expr(ctx, X, mode, p, kernel, strides, dilations)
    return (f"{fn}({X}, {_lst(kernel)}, {_lst(strides)}, {_lst(dilations)}, {pe}, "
            f"{bool(ceil_mode)}, {bool(count_include_pad)})")


@register("LpPool", (1, 2, 11, 18, 22))
def lp_pool(ctx: Ctx, X: Arg, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations=None,
            kernel_shape=None, p: float = 2, pads=None, strides=None):
    kernel, n, strides, dilations, mode, pp = _setup(ctx, X, kernel_shape, strides, dilations,
                                                     pads, auto_pad)
    pv = float(p)
    if (mode == "static" and not any(pp) and dilations == [1] * n and not ceil_mode
            and pv == 2.0 and n in (1, 2)):
        return f"F.lp_pool{n}d({X}, 2, {_tup(kernel)}, stride={_tup(strides)})"
    fn = ctx.helper("_lp_pool_nd")
    pe = _pads_expr(ctx, X, mode, pp, kernel, strides, dilations)
    pl = ctx.lit(int(pv) if pv.is_integer() else pv)
    return (f"{fn}({X}, {_lst(kernel)}, {_lst(strides)}, {_lst(dilations)}, {pe}, {pl}, "
            f"{bool(ceil_mode)})")


def _spatial_dims(ctx: Ctx, X: Arg) -> str:
    r = ctx.rank(X)
    if r is None:
        return f"tuple(range(2, {X}.dim()))"
    return "(" + ", ".join(str(i) for i in range(2, r)) + ("," if r == 3 else "") + ")"


@register("GlobalAveragePool", (1, 22))
def global_average_pool(ctx: Ctx, X: Arg):
    return f"{X}.mean(dim={_spatial_dims(ctx, X)}, keepdim=True)"


@register("GlobalMaxPool", (1, 22))
def global_max_pool(ctx: Ctx, X: Arg):
    return f"{X}.amax(dim={_spatial_dims(ctx, X)}, keepdim=True)"


@register("GlobalLpPool", (1, 2, 22))
def global_lp_pool(ctx: Ctx, X: Arg, *, p: float = 2):
    pv = float(p)
    pl = ctx.lit(int(pv) if pv.is_integer() else pv)
    return f"torch.linalg.vector_norm({X}, ord={pl}, dim={_spatial_dims(ctx, X)}, keepdim=True)"


@register("MaxUnpool", (9, 11, 22))
def max_unpool(ctx: Ctx, X: Arg, I: Arg, output_shape: Arg | None = None, *, kernel_shape=None,
               pads=None, strides=None):
    if not kernel_shape:
        ctx.fail("kernel_shape is required")
    kernel = [int(k) for k in kernel_shape]
    n = len(kernel)
    strides = [int(s) for s in strides] if strides else [1] * n
    p = [int(v) for v in pads] if pads else [0] * (2 * n)
    dims = [f"{X}.shape[0]", f"{X}.shape[1]"]
    for i in range(n):
        extra = kernel[i] - p[i] - p[i + n]
        term = f"({X}.shape[{i + 2}] - 1) * {strides[i]}" if strides[i] != 1 else \
            f"({X}.shape[{i + 2}] - 1)"
        dims.append(f"{term} + {extra}" if extra else term)
    shape = "[" + ", ".join(dims) + "]"
    out = ctx.tmp("unpooled")
    ctx.line(f"{out} = {X}.new_zeros({shape})")
    ctx.line(f"{out} = {out}.flatten().scatter(0, {I}.flatten(), {X}.flatten()).reshape({out}.shape)")
    if output_shape is not None:
        # indices address the default output; a different output_shape pads/crops at the end
        shp = ctx.const(output_shape)
        target = _lst(shp.tolist()[2:]) if shp is not None else f"{output_shape}.tolist()[2:]"
        tgt = ctx.tmp("out_size")
        ctx.line(f"{tgt} = {target}")
        ends = ", ".join(f"0, {tgt}[{i}] - {out}.shape[{i + 2}]" for i in reversed(range(n)))
        return f"F.pad({out}, [{ends}])"
    return out


@register("MaxRoiPool", (1, 22))
def max_roi_pool(ctx: Ctx, X: Arg, rois: Arg, *, pooled_shape=None, spatial_scale: float = 1.0):
    if not pooled_shape or len(pooled_shape) != 2:
        ctx.fail("pooled_shape must have 2 entries")
    fn = ctx.helper("_max_roi_pool")
    return f"{fn}({X}, {rois}, {_lst(pooled_shape)}, {ctx.lit(float(spatial_scale))})"
