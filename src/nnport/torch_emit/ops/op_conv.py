"""Convolutions: Conv, ConvTranspose, DeformConv.

A Conv/ConvTranspose whose weight (and bias) are constants becomes an ``nn.ConvNd`` /
``nn.ConvTransposeNd`` submodule; a dynamic weight gives ``F.convNd``.  Padding torch cannot
express (asymmetric pads, auto_pad SAME on dynamic sizes) is applied with ``F.pad`` first.
"""
from __future__ import annotations

from ..emitter import Arg, Ctx, register
from ..helpers.h_pads import _same_pads, _torch_pads


def _tup(vals, n: int | None = None) -> str:
    vals = [int(v) for v in vals]
    if len(vals) == 1:
        return str(vals[0])
    return "(" + ", ".join(str(v) for v in vals) + ")"


def _lst(vals) -> str:
    return "[" + ", ".join(str(int(v)) for v in vals) + "]"


def kernel_of(ctx: Ctx, W: Arg | None, kernel_shape, X: Arg | None = None) -> list[int]:
    """Spatial kernel size from the attribute or the weight's static shape."""
    ws = ctx.shape(W) if W is not None else None
    if kernel_shape:
        kernel = [int(k) for k in kernel_shape]
        if ws is not None and all(isinstance(d, int) for d in ws[2:]) and (
                len(ws) < 3 or list(ws[2:]) != kernel):
            ctx.fail(f"kernel_shape {kernel} does not match the weight's shape {list(ws)}")
        return kernel
    if ws is None or len(ws) < 3 or any(d is None for d in ws[2:]):
        ctx.fail("kernel_shape is not given and the weight's shape is not known")
    return [int(d) for d in ws[2:]]


def spatial_sizes(ctx: Ctx, X: Arg, n: int) -> list | None:
    s = ctx.shape(X)
    if s is None or len(s) != n + 2:
        return None
    return list(s[2:])


def resolve_pads(ctx: Ctx, X: Arg, kernel, strides, dilations, pads, auto_pad):
    """-> ("static", [b.., e..]) or ("same", upper) when SAME padding depends on dynamic sizes."""
    n = len(kernel)
    auto_pad = auto_pad or "NOTSET"
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        sizes = spatial_sizes(ctx, X, n)
        upper = auto_pad == "SAME_UPPER"
        if sizes is None or any(d is None for d in sizes):
            return "same", upper
        return "static", _same_pads(sizes, kernel, strides, dilations, upper)
    if auto_pad == "VALID":
        return "static", [0] * (2 * n)
    if auto_pad != "NOTSET":
        ctx.fail(f"unknown auto_pad {auto_pad!r}")
    pads = [int(p) for p in pads] if pads else [0] * (2 * n)
    if len(pads) != 2 * n:
        ctx.fail(f"pads has {len(pads)} entries, expected {2 * n}")
    return "static", pads


def _padded_input(ctx: Ctx, X: Arg, kernel, strides, dilations, pads, auto_pad):
    """(expression of the input, symmetric torch padding) with extra padding applied first."""
    n = len(kernel)
    mode, p = resolve_pads(ctx, X, kernel, strides, dilations, pads, auto_pad)
    if mode == "same":
        fn = ctx.helper("_pad_same")
        xp = ctx.tmp("x_pad")
        ctx.line(f"{xp} = {fn}({X}, {_lst(kernel)}, {_lst(strides)}, {_lst(dilations)}, {p})")
        return xp, [0] * n
    if p[:n] == p[n:]:
        return str(X), p[:n]
    xp = ctx.tmp("x_pad")
    ctx.line(f"{xp} = F.pad({X}, {_lst(_torch_pads(p))})")
    return xp, [0] * n


def _defaults(n, strides, dilations):
    strides = [int(s) for s in strides] if strides else [1] * n
    dilations = [int(d) for d in dilations] if dilations else [1] * n
    return strides, dilations


@register("Conv", (1, 11, 22))
def conv(ctx: Ctx, X: Arg, W: Arg, B: Arg | None = None, *, auto_pad: str = "NOTSET",
         dilations=None, group: int = 1, kernel_shape=None, pads=None, strides=None):
    kernel = kernel_of(ctx, W, kernel_shape)
    n = len(kernel)
    if n not in (1, 2, 3):
        ctx.fail(f"{n}-d convolution is not supported")
    strides, dilations = _defaults(n, strides, dilations)
    x, padding = _padded_input(ctx, X, kernel, strides, dilations, pads, auto_pad)
    w = ctx.const(W)
    b = ctx.const(B) if B is not None else None
    if w is not None and (B is None or b is not None) and list(w.shape[2:]) == kernel:
        args = [str(w.shape[1] * group), str(w.shape[0]), f"kernel_size={_tup(kernel)}"]
        if strides != [1] * n:
            args.append(f"stride={_tup(strides)}")
        if any(padding):
            args.append(f"padding={_tup(padding)}")
        if dilations != [1] * n:
            args.append(f"dilation={_tup(dilations)}")
        if group != 1:
            args.append(f"groups={group}")
        if b is None:
            args.append("bias=False")
        mod = ctx.module(ctx.module_hint(W), f"nn.Conv{n}d({', '.join(args)})",
                         {"weight": w, "bias": b})
        return f"{mod}({x})"
    args = [x, str(W), str(B) if B is not None else "None"]
    kw = []
    if strides != [1] * n:
        kw.append(f"stride={_tup(strides)}")
    if any(padding):
        kw.append(f"padding={_tup(padding)}")
    if dilations != [1] * n:
        kw.append(f"dilation={_tup(dilations)}")
    if group != 1:
        kw.append(f"groups={group}")
    if B is None:
        args = args[:2]
    return f"F.conv{n}d({', '.join(args + kw)})"


@register("ConvTranspose", (1, 11, 22))
def conv_transpose(ctx: Ctx, X: Arg, W: Arg, B: Arg | None = None, *, auto_pad: str = "NOTSET",
                   dilations=None, group: int = 1, kernel_shape=None, output_padding=None,
                   output_shape=None, pads=None, strides=None):
    kernel = kernel_of(ctx, W, kernel_shape)
    n = len(kernel)
    if n not in (1, 2, 3):
        ctx.fail(f"{n}-d transposed convolution is not supported")
    strides, dilations = _defaults(n, strides, dilations)
    out_pad = [int(p) for p in output_padding] if output_padding else [0] * n
    if len(out_pad) == 2 * n:
        out_pad = out_pad[:n]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    auto_pad = auto_pad or "NOTSET"
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        sizes = spatial_sizes(ctx, X, n)
        if output_shape:
            target = [int(v) for v in output_shape][-n:]
            if sizes is None or any(v is None for v in sizes):
                ctx.fail("output_shape with dynamic input sizes is not supported")
            totals = [s * (i - 1) + o + e - t
                      for s, i, o, e, t in zip(strides, sizes, out_pad, eff, target)]
        else:
            # output = input * stride, so the total padding does not depend on the input size
            totals = [o + e - s for s, o, e in zip(strides, out_pad, eff)]
        if auto_pad == "SAME_UPPER":
            begins = [t // 2 for t in totals]
        else:
            begins = [t - t // 2 for t in totals]
        p = begins + [t - b for t, b in zip(totals, begins)]
    elif auto_pad == "VALID" or not pads:
        p = [0] * (2 * n)
    else:
        p = [int(v) for v in pads]
    w = ctx.const(W)
    b = ctx.const(B) if B is not None else None
    const_mod = w is not None and (B is None or b is not None)
    # torch: symmetric padding q, output_padding e (< max(stride, dilation)), then crop
    sym, tpad, crop_b, crop_e = [], [], [], []
    torch_ok = all(v >= 0 for v in p)
    for i in range(n):
        q = min(p[i], p[i + n])
        e = out_pad[i] - (p[i + n] - q)
        sym.append(q)
        tpad.append(max(e, 0))
        crop_b.append(p[i] - q)
        crop_e.append(max(-e, 0))
        if e >= max(strides[i], dilations[i]):
            torch_ok = False
    kw = []
    if strides != [1] * n:
        kw.append(f"stride={_tup(strides)}")
    if torch_ok and any(sym):
        kw.append(f"padding={_tup(sym)}")
    if torch_ok and any(tpad):
        kw.append(f"output_padding={_tup(tpad)}")
    if group != 1:
        kw.append(f"groups={group}")
    if dilations != [1] * n:
        kw.append(f"dilation={_tup(dilations)}")
    if torch_ok:
        if const_mod:
            args = [str(w.shape[0]), str(w.shape[1] * group), f"kernel_size={_tup(kernel)}"] + kw
            if b is None:
                args.append("bias=False")
            mod = ctx.module(ctx.module_hint(W), f"nn.ConvTranspose{n}d({', '.join(args)})",
                             {"weight": w, "bias": b})
            y = f"{mod}({X})"
        else:
            y = f"F.conv_transpose{n}d({', '.join([str(X), str(W)] + ([str(B)] if B is not None else []) + kw)})"
        if any(crop_b) or any(crop_e):
            sl = [":", ":"] + [f"{cb or ''}:{-ce if ce else ''}" for cb, ce in zip(crop_b, crop_e)]
            y = f"{y}[{', '.join(sl)}]"
        return y
    # general case: no padding in torch, then crop/extend with F.pad, then the bias
    wexpr = ctx.weight(w, ctx.module_hint(W) + "_weight") if const_mod else str(W)
    yt = ctx.tmp("y")
    ctx.line(f"{yt} = F.conv_transpose{n}d({', '.join([str(X), wexpr] + kw)})")
    ext = [-v for v in p[:n]] + [o - v for o, v in zip(out_pad, p[n:])]
    ctx.line(f"{yt} = F.pad({yt}, {_lst(_torch_pads(ext))})")
    if B is not None:
        bexpr = ctx.weight(b, ctx.module_hint(W) + "_bias") if const_mod else str(B)
        return f"{yt} + {bexpr}.reshape({', '.join(['1', '-1'] + ['1'] * n)})"
    return yt


@register("DeformConv", (19, 22))
def deform_conv(ctx: Ctx, X: Arg, W: Arg, offset: Arg, B: Arg | None = None,
                mask: Arg | None = None, *, dilations=None, group: int = 1, kernel_shape=None,
                offset_group: int = 1, pads=None, strides=None):
    kernel = kernel_of(ctx, W, kernel_shape)
    n = len(kernel)
    if n != 2:
        ctx.fail("only 2-d DeformConv is supported")
    strides, dilations = _defaults(n, strides, dilations)
    p = [int(v) for v in pads] if pads else [0] * 4
    fn = ctx.helper("_deform_conv2d")
    b = str(B) if B is not None else "None"
    m = str(mask) if mask is not None else "None"
    return (f"{fn}({X}, {W}, {offset}, {b}, {m}, {_lst(strides)}, {_lst(p[:2])}, "
            f"{_lst(dilations)}, {group}, {offset_group})")
