"""Normalization and dropout: BatchNormalization, InstanceNormalization, GroupNormalization,
LayerNormalization, RMSNormalization, LRN, LpNormalization, MeanVarianceNormalization, Dropout.

Constant parameters become ``nn.BatchNorm2d`` / ``nn.InstanceNorm2d`` / ``nn.GroupNorm`` /
``nn.LayerNorm`` / ``nn.RMSNorm`` submodules; otherwise the ``F.*`` function is used.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register

_F32 = ir.DataType.FLOAT
_LOW = {ir.DataType.FLOAT16, ir.DataType.BFLOAT16}


def _used(ctx: Ctx, i: int) -> bool:
    outs = ctx.node.outputs
    return i < len(outs) and (bool(outs[i].uses()) or outs[i].is_graph_output())


def _eps(ctx: Ctx, v: float) -> str:
    return ctx.lit(float(v), _F32)


def _bcast(ctx: Ctx, expr: str, rank: int | None, X: Arg) -> str:
    """(C,) -> (C, 1, 1, ...) for an input of the given rank."""
    if rank is None:
        return f"{expr}.reshape([-1] + [1] * ({X}.dim() - 2))"
    return f"{expr}.reshape({', '.join(['-1'] + ['1'] * (rank - 2))})"


@register("BatchNormalization", (1, 6, 7, 9, 14, 15))
def batch_norm(ctx: Ctx, X: Arg, scale: Arg, B: Arg, mean: Arg, var: Arg, *,
               epsilon: float = 1e-5, momentum: float = 0.9, spatial: int = 1,
               is_test: int = 0, training_mode: int = 0, consumed_inputs=None):
    eps = _eps(ctx, epsilon)
    rank = ctx.rank(X)
    if ctx.opset >= 14:
        training = bool(training_mode)
    elif ctx.opset < 7 and is_test:
        training = False
    else:
        training = any(_used(ctx, i) for i in range(1, 5))
    if not spatial and ctx.opset < 9:
        # per-activation statistics: parameters have shape (C, D1, ...)
        if training:
            ctx.fail("training mode with spatial=0 is not supported")
        return (f"({X} - {mean}) / torch.sqrt({var} + {eps}) * {scale} + {B}")
    if training:
        dims = "[0] + list(range(2, {x}.dim()))".format(x=X) if rank is None else \
            "(" + ", ".join(str(i) for i in [0] + list(range(2, rank))) + ("," if rank == 1 else "") + ")"
        bm, bv = ctx.tmp("batch_mean"), ctx.tmp("batch_var")
        ctx.line(f"{bm} = {X}.mean(dim={dims})")
        ctx.line(f"{bv} = {X}.var(dim={dims}, unbiased=False)")
        y = (f"({X} - {_bcast(ctx, bm, rank, X)}) / torch.sqrt({_bcast(ctx, bv, rank, X)} + {eps})"
             f" * {_bcast(ctx, str(scale), rank, X)} + {_bcast(ctx, str(B), rank, X)}")
        m = ctx.lit(float(momentum), _F32)
        run_m = f"{mean} * {m} + {bm} * (1 - {m})"
        run_v = f"{var} * {m} + {bv} * (1 - {m})"
        outs = [y, run_m, run_v, bm, bv]
        return outs[: len(ctx.node.outputs)]
    consts = [ctx.const(a) for a in (scale, B, mean, var)]
    if all(c is not None for c in consts) and len({c.shape for c in consts} | {(c.size,) for c in consts}) != 1:
        ctx.fail("scale, B, mean and var must be 1-D of the same length, got shapes "
                 + ", ".join(str(list(c.shape)) for c in consts))
    if all(c is not None for c in consts) and rank in (2, 3, 4, 5):
        c = consts[0].shape[0]
        n = {2: 1, 3: 1, 4: 2, 5: 3}[rank]
        args = [str(c)]
        if abs(epsilon - 1e-5) > 1e-12:
            args.append(f"eps={eps}")
        if abs(momentum - 0.9) > 1e-6:
            args.append(f"momentum={ctx.lit(1.0 - float(momentum), _F32)}")
        mod = ctx.module(ctx.module_hint(scale), f"nn.BatchNorm{n}d({', '.join(args)})", {
            "weight": consts[0], "bias": consts[1], "running_mean": consts[2],
            "running_var": consts[3], "num_batches_tracked": np.array(0, dtype=np.int64)})
        y = f"{mod}({X})"
    elif consts[2] is not None and consts[3] is not None:
        # running statistics are buffers (never trained, updated in place by F.batch_norm in
        # training mode): the module behaves as nn.BatchNormNd does under train()/eval()
        hint = ctx.module_hint(scale)
        rm = ctx.weight(consts[2], mean.value.name or hint + "_running_mean", parameter=False)
        rv = ctx.weight(consts[3], var.value.name or hint + "_running_var", parameter=False)
        mom = ctx.lit(1.0 - float(momentum), _F32)
        y = (f"F.batch_norm({X}, {rm}, {rv}, {scale}, {B}, training=self.training, "
             f"momentum={mom}, eps={eps})")
    else:
        # statistics computed by the graph: they are inputs of the model, not state to update
        y = f"F.batch_norm({X}, {mean}, {var}, {scale}, {B}, training=False, eps={eps})"
    if len(ctx.node.outputs) > 1:
        return [y] + [None] * (len(ctx.node.outputs) - 1)
    return y


@register("InstanceNormalization", (1, 6, 22))
def instance_norm(ctx: Ctx, X: Arg, scale: Arg, B: Arg, *, epsilon: float = 1e-5,
                  consumed_inputs=None):
    eps = _eps(ctx, epsilon)
    rank = ctx.rank(X)
    s, b = ctx.const(scale), ctx.const(B)
    if s is not None and b is not None and (s.ndim != 1 or s.shape != b.shape):
        ctx.fail(f"scale and B must be 1-D of the same length, got shapes {list(s.shape)}, "
                 f"{list(b.shape)}")
    if s is not None and b is not None and rank in (3, 4, 5):
        n = rank - 2
        args = [str(s.shape[0])]
        if abs(epsilon - 1e-5) > 1e-12:
            args.append(f"eps={eps}")
        args.append("affine=True")
        mod = ctx.module(ctx.module_hint(scale), f"nn.InstanceNorm{n}d({', '.join(args)})",
                         {"weight": s, "bias": b})
        return f"{mod}({X})"
    return f"F.instance_norm({X}, weight={scale}, bias={B}, eps={eps})"


@register("GroupNormalization", (18, 21))
def group_norm(ctx: Ctx, X: Arg, scale: Arg, bias: Arg, *, epsilon: float = 1e-5,
               num_groups: int = None, stash_type: int = 1):
    if num_groups is None:
        ctx.fail("num_groups is required")
    eps = _eps(ctx, epsilon)
    g = int(num_groups)
    xs = ctx.shape(X)
    chans = xs[1] if xs is not None and len(xs) > 1 else None
    s, b = ctx.const(scale), ctx.const(bias)
    per_group = ctx.opset < 21
    if s is not None and b is not None and (not per_group or chans is not None):
        if per_group:  # opset 18: one scale/bias per group
            s = np.repeat(s, chans // g)
            b = np.repeat(b, chans // g)
        c = s.shape[0]
        args = [str(g), str(c)]
        if abs(epsilon - 1e-5) > 1e-12:
            args.append(f"eps={eps}")
        mod = ctx.module(ctx.module_hint(scale), f"nn.GroupNorm({', '.join(args)})",
                         {"weight": s, "bias": b})
        return f"{mod}({X})"
    sc, bi = str(scale), str(bias)
    if per_group:
        sc = f"{scale}.repeat_interleave({X}.shape[1] // {g})"
        bi = f"{bias}.repeat_interleave({X}.shape[1] // {g})"
    if stash_type == 1 and ctx.dtype(X) in _LOW:
        return f"F.group_norm({X}.float(), {g}, {sc}.float(), {bi}.float(), eps={eps}).to({X}.dtype)"
    return f"F.group_norm({X}, {g}, {sc}, {bi}, eps={eps})"


def _norm_shape(ctx: Ctx, X: Arg, weight: Arg | None, axis: int):
    """(static normalized shape or None, weight fits F.layer_norm's weight exactly)."""
    xs = ctx.shape(X)
    if xs is None:
        return None, False
    r = len(xs)
    ax = axis + r if axis < 0 else axis
    dims = list(xs[ax:])
    if weight is None:
        return (dims if None not in dims else None), True
    ws = ctx.shape(weight)
    if ws is None:
        return None, False
    ws = list(ws)
    while ws and len(ws) > len(dims) and ws[0] == 1:
        ws = ws[1:]
    if len(ws) != len(dims) or None in ws:
        return None, False
    for d, w in zip(dims, ws):
        if d is not None and d != w:
            return None, False
        if d is None and w == 1:
            return None, False
    return ws, True


@register("LayerNormalization", 17)
def layer_norm(ctx: Ctx, X: Arg, Scale: Arg, B: Arg | None = None, *, axis: int = -1,
               epsilon: float = 1e-5, stash_type: int = 1):
    eps = _eps(ctx, epsilon)
    rank = ctx.rank(X)
    want_stats = _used(ctx, 1) or _used(ctx, 2)
    shape, fits = _norm_shape(ctx, X, Scale, axis)
    if not want_stats and fits and shape is not None:
        s = ctx.const(Scale)
        b = ctx.const(B) if B is not None else None
        if s is not None and (B is None or b is not None):
            args = [str(tuple(shape)) if len(shape) > 1 else str(shape[0])]
            if abs(epsilon - 1e-5) > 1e-12:
                args.append(f"eps={eps}")
            if B is None:
                args.append("bias=False")
            state = {"weight": s.reshape(shape), "bias": None if b is None else b.reshape(shape)}
            if b is not None and b.size != s.size:
                state["bias"] = np.broadcast_to(b, shape).copy()
            mod = ctx.module(ctx.module_hint(Scale), f"nn.LayerNorm({', '.join(args)})", state)
            return f"{mod}({X})"
    if not want_stats and fits:
        ns = f"{X}.shape[{axis}:]"
        b = f", {B}" if B is not None else ""
        if B is not None and ctx.shape(B) != ctx.shape(Scale):
            return f"F.layer_norm({X}, {ns}, {Scale}.expand({ns})) + {B}"
        return f"F.layer_norm({X}, {ns}, {Scale}{b}, eps={eps})"
    # explicit form (also yields Mean and InvStdDev)
    if rank is None:
        dims = f"tuple(range({axis} % {X}.dim(), {X}.dim()))"
    else:
        ax = axis + rank if axis < 0 else axis
        dims = "(" + ", ".join(str(i) for i in range(ax, rank)) + ("," if rank - ax == 1 else "") + ")"
    xf = f"{X}.float()" if stash_type == 1 and ctx.dtype(X) in _LOW else str(X)
    mu, inv = ctx.tmp("mean"), ctx.tmp("inv_std")
    ctx.line(f"{mu} = {xf}.mean(dim={dims}, keepdim=True)")
    ctx.line(f"{inv} = torch.rsqrt({xf}.var(dim={dims}, unbiased=False, keepdim=True) + {eps})")
    y = f"(({xf} - {mu}) * {inv}).to({X}.dtype) * {Scale}"
    if B is not None:
        y += f" + {B}"
    outs = [y, mu, inv]
    return outs[: len(ctx.node.outputs)]


@register("RMSNormalization", 23)
def rms_norm(ctx: Ctx, X: Arg, scale: Arg, *, axis: int = -1, epsilon: float = 1e-5,
             stash_type: int = 1):
    eps = _eps(ctx, epsilon)
    shape, fits = _norm_shape(ctx, X, scale, axis)
    if fits and shape is not None:
        s = ctx.const(scale)
        if s is not None:
            args = [str(tuple(shape)) if len(shape) > 1 else str(shape[0]), f"eps={eps}"]
            mod = ctx.module(ctx.module_hint(scale), f"nn.RMSNorm({', '.join(args)})",
                             {"weight": s.reshape(shape)})
            return f"{mod}({X})"
    if fits:
        return f"F.rms_norm({X}, {X}.shape[{axis}:], {scale}, eps={eps})"
    rank = ctx.rank(X)
    if rank is None:
        dims = f"tuple(range({axis} % {X}.dim(), {X}.dim()))"
    else:
        ax = axis + rank if axis < 0 else axis
        dims = "(" + ", ".join(str(i) for i in range(ax, rank)) + ("," if rank - ax == 1 else "") + ")"
    xf = f"{X}.float()" if stash_type == 1 and ctx.dtype(X) in _LOW else str(X)
    return (f"({xf} * torch.rsqrt(({xf} * {xf}).mean(dim={dims}, keepdim=True) + {eps}))"
            f".to({X}.dtype) * {scale}")


@register("LRN", (1, 13))
def lrn(ctx: Ctx, X: Arg, *, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        size: int = None):
    if size is None:
        ctx.fail("size is required")
    a, b, k = (ctx.lit(float(v), _F32) for v in (alpha, beta, bias))
    if size % 2 == 1:
        return f"F.local_response_norm({X}, {size}, alpha={a}, beta={b}, k={k})"
    # even size: ONNX puts the larger half of the window after the channel, torch before
    rank = ctx.rank(X)
    if rank is None:
        ctx.fail("LRN with an even size needs a known rank")
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = ctx.tmp("sq")
    ctx.line(f"{sq} = ({X} * {X}).unsqueeze(1)")
    pad = [0, 0] * (rank - 2) + [lo, hi]
    ctx.line(f"{sq} = F.pad({sq}, {pad})")
    kern = "(" + ", ".join([str(size)] + ["1"] * (rank - 2)) + ")"
    n = rank - 1
    if n > 3:
        ctx.fail("LRN with an even size supports ranks up to 4")
    pool = f"F.avg_pool{n}d({sq}, {kern}, stride=1)" if n > 1 else \
        f"F.avg_pool1d({sq}, {size}, stride=1)"
    return f"{X} / ({k} + {a} * {pool}.squeeze(1)) ** {b}"


@register("LpNormalization", (1, 22))
def lp_norm(ctx: Ctx, X: Arg, *, axis: int = -1, p: int = 2):
    return f"F.normalize({X}, p={float(p)}, dim={axis})"


@register("MeanVarianceNormalization", (9, 13))
def mvn(ctx: Ctx, X: Arg, *, axes=None):
    axes = list(axes) if axes is not None else [0, 2, 3]
    dims = "(" + ", ".join(str(a) for a in axes) + ("," if len(axes) == 1 else "") + ")"
    mu = ctx.tmp("mean")
    ctx.line(f"{mu} = {X}.mean(dim={dims}, keepdim=True)")
    return (f"({X} - {mu}) / (torch.sqrt({X}.var(dim={dims}, unbiased=False, keepdim=True))"
            f" + 1e-9)")


@register("Dropout", (1, 6, 7, 10))
def dropout_attr(ctx: Ctx, data: Arg, *, ratio: float = 0.5, is_test: int = 0,
                 consumed_inputs=None):
    """Opset < 12: ratio is an attribute; converted for inference (identity)."""
    if not _used(ctx, 1):
        return [str(data)] + [None] * (len(ctx.node.outputs) - 1)
    if ctx.opset < 10:
        return [str(data), f"torch.ones_like({data})"]  # mask has the data's type
    return [str(data), f"torch.ones_like({data}, dtype=torch.bool)"]


@register("Dropout", (12, 13, 22))
def dropout(ctx: Ctx, data: Arg, ratio: Arg | None = None, training_mode: Arg | None = None, *,
            seed: int = None):
    want_mask = _used(ctx, 1)
    train = ctx.const(training_mode) if training_mode is not None else np.array(False)
    r = ctx.const(ratio) if ratio is not None else np.array(0.5)
    if train is not None and not bool(train):
        if not want_mask:
            return [str(data)] + [None] * (len(ctx.node.outputs) - 1)
        return [str(data), f"torch.ones_like({data}, dtype=torch.bool)"]
    fn = ctx.helper("_dropout")
    rexpr = ctx.lit(float(r)) if r is not None else f"float({ratio})"
    texpr = "True" if train is not None else f"bool({training_mode})"
    out = f"{fn}({data}, {rexpr}, {texpr})"
    if len(ctx.node.outputs) == 1:
        return f"{out}[0]"
    return out
