"""Neural-network building blocks: Softmax/LogSoftmax, Attention, RotaryEmbedding, SwiGLU and
the losses NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss.

Softmax prints as ``torch.softmax(x, dim=-1)``.  Versions 1 and 11 coerce the input to 2-D at
``axis`` (normalizing over all trailing dims together), which is a softmax over the last dim of
``x.flatten(axis)``.  Attention prints as ``F.scaled_dot_product_attention`` where its semantics
match exactly, else it calls a helper that follows the spec step by step.
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register


def _softmax(fn: str):
    def emit(ctx: Ctx, x: Arg, *, axis: int | None = None):
        rank = ctx.rank(x)
        if ctx.opset >= 13:
            ax = -1 if axis is None else axis
            if rank is not None and ax == rank - 1:
                ax = -1
            return f"{fn}({x}, dim={ax})"
        ax = 1 if axis is None else axis
        if rank is not None:
            if ax < 0:
                ax += rank
            if ax == rank - 1 or rank == 0:
                return f"{fn}({x}, dim=-1)"
        elif ax == -1:
            return f"{fn}({x}, dim=-1)"
        # legacy: normalize over all dims from `axis` on, as one flattened dim
        return f"{fn}({x}.flatten({ax}), dim=-1).reshape({x}.shape)"

    return emit


register("Softmax", (1, 11, 13))(_softmax("torch.softmax"))
register("LogSoftmax", (1, 11, 13))(_softmax("torch.log_softmax"))


# ---- Attention ------------------------------------------------------------------------------
def _used(ctx: Ctx, i: int) -> bool:
    outs = ctx.node.outputs
    return i < len(outs) and outs[i] is not None and (bool(outs[i].uses())
                                                      or outs[i].is_graph_output())


def _attention(ctx: Ctx, Q: Arg, K: Arg, V: Arg, attn_mask: Arg | None = None,
               past_key: Arg | None = None, past_value: Arg | None = None,
               nonpad_kv_seqlen: Arg | None = None, *, qk_matmul_output_mode: int = 0,
               softcap: float = 0.0, softmax_precision: int | None = None,
               kv_num_heads: int | None = None, q_num_heads: int | None = None,
               scale: float | None = None, is_causal: int = 0, left_window_size: int = -1,
               right_window_size: int = -1):
    n_out = len(ctx.node.outputs)
    rank = ctx.rank(Q)
    if rank is None:
        ctx.fail("Attention needs the rank of Q")
    if rank == 3 and (not q_num_heads or not kv_num_heads):
        ctx.fail("3-D Attention needs q_num_heads and kv_num_heads")
    dt = ctx.dtype(Q)
    same_precision = softmax_precision is None or ir.DataType(softmax_precision) == dt
    simple = (dt in (ir.DataType.FLOAT, ir.DataType.DOUBLE) and attn_mask is None and past_key is None and past_value is None
              and nonpad_kv_seqlen is None and not softcap and same_precision
              and left_window_size < 0 and right_window_size < 0 and not _used(ctx, 3))
    if simple:
        q, k, v = str(Q), str(K), str(V)
        if rank == 3:
            q, k, v = ctx.tmp("q"), ctx.tmp("k"), ctx.tmp("v")
            for name, src, heads in ((q, Q, q_num_heads), (k, K, kv_num_heads),
                                     (v, V, kv_num_heads)):
                ctx.line(f"{name} = {src}.reshape({src}.shape[0], {src}.shape[1], {heads}, -1)"
                         ".transpose(1, 2)")
        args = [q, k, v]
        if is_causal:
            args.append("is_causal=True")
        if scale is not None:
            args.append(f"scale={ctx.lit(float(scale))}")
        hq = q_num_heads if rank == 3 else (ctx.shape(Q) or (None,) * 4)[1]
        hk = kv_num_heads if rank == 3 else (ctx.shape(K) or (None,) * 4)[1]
        if hq is None or hk is None:
            args.append(f"enable_gqa={q}.shape[1] != {k}.shape[1]")
        elif hq != hk:
            args.append("enable_gqa=True")
        y = f"F.scaled_dot_product_attention({', '.join(args)})"
        if rank == 3:
            t = ctx.tmp("attn")
            ctx.line(f"{t} = {y}")
            y = f"{t}.transpose(1, 2).reshape({t}.shape[0], {t}.shape[2], -1)"
        outs = [y, k, v, None][:n_out]
        return outs
    fn = ctx.helper("_onnx_attention")
    args = [str(Q), str(K), str(V)]
    for name, a in (("attn_mask", attn_mask), ("past_key", past_key),
                    ("past_value", past_value), ("nonpad_kv_seqlen", nonpad_kv_seqlen)):
        if a is not None:
            args.append(f"{name}={a}")
    if scale is not None:
        args.append(f"scale={ctx.lit(float(scale))}")
    if is_causal:
        args.append("is_causal=True")
    if rank == 3:
        args.append(f"q_num_heads={q_num_heads}")
        args.append(f"kv_num_heads={kv_num_heads}")
    if softcap:
        args.append(f"softcap={ctx.lit(float(softcap))}")
    if qk_matmul_output_mode:
        args.append(f"qk_matmul_output_mode={qk_matmul_output_mode}")
    if not same_precision:
        args.append(f"softmax_dtype={ctx.dtype_src(softmax_precision)}")
    if left_window_size >= 0:
        args.append(f"left_window_size={left_window_size}")
    if right_window_size >= 0:
        args.append(f"right_window_size={right_window_size}")
    call = f"{fn}({', '.join(args)})"
    if n_out == 1:
        return f"{call}[0]"
    return f"{call}[:{n_out}]" if n_out < 4 else call


@register("Attention", (23, 24))
def attention_23(ctx: Ctx, Q: Arg, K: Arg, V: Arg, attn_mask: Arg | None = None,
                 past_key: Arg | None = None, past_value: Arg | None = None,
                 nonpad_kv_seqlen: Arg | None = None, *, qk_matmul_output_mode: int = 0,
                 softcap: float = 0.0, softmax_precision: int | None = None,
                 kv_num_heads: int | None = None, q_num_heads: int | None = None,
                 scale: float | None = None, is_causal: int = 0):
    return _attention(ctx, Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      qk_matmul_output_mode=qk_matmul_output_mode, softcap=softcap,
                      softmax_precision=softmax_precision, kv_num_heads=kv_num_heads,
                      q_num_heads=q_num_heads, scale=scale, is_causal=is_causal)


@register("Attention", (25,))
def attention_25(ctx: Ctx, Q: Arg, K: Arg, V: Arg, attn_mask: Arg | None = None,
                 past_key: Arg | None = None, past_value: Arg | None = None,
                 nonpad_kv_seqlen: Arg | None = None, *, qk_matmul_output_mode: int = 0,
                 softcap: float = 0.0, softmax_precision: int | None = None,
                 kv_num_heads: int | None = None, q_num_heads: int | None = None,
                 scale: float | None = None, is_causal: int = 0, left_window_size: int = -1,
                 right_window_size: int = -1):
    if ctx.rank(Q) == 4 and (q_num_heads is not None or kv_num_heads is not None):
        ctx.fail("q_num_heads and kv_num_heads must not be given for 4-D inputs")
    return _attention(ctx, Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      qk_matmul_output_mode=qk_matmul_output_mode, softcap=softcap,
                      softmax_precision=softmax_precision, kv_num_heads=kv_num_heads,
                      q_num_heads=q_num_heads, scale=scale, is_causal=is_causal,
                      left_window_size=left_window_size, right_window_size=right_window_size)


# ---- RotaryEmbedding, SwiGLU ----------------------------------------------------------------
@register("RotaryEmbedding", (23,))
def rotary_embedding(ctx: Ctx, X: Arg, cos_cache: Arg, sin_cache: Arg,
                     position_ids: Arg | None = None, *, num_heads: int = 0,
                     rotary_embedding_dim: int = 0, interleaved: int = 0):
    fn = ctx.helper("_rotary_embedding")
    args = [str(X), str(cos_cache), str(sin_cache)]
    if position_ids is not None:
        args.append(f"position_ids={position_ids}")
    if interleaved:
        args.append("interleaved=True")
    if rotary_embedding_dim:
        args.append(f"rotary_dim={rotary_embedding_dim}")
    if num_heads:
        args.append(f"num_heads={num_heads}")
    return f"{fn}({', '.join(args)})"


@register("SwiGLU", (28,))
def swiglu(ctx: Ctx, A: Arg, B: Arg, *, alpha: float = 1.0):
    if alpha == 1.0:
        return f"F.silu({A}) * {B}"
    return f"{A} * torch.sigmoid({ctx.lit(float(alpha))} * {A}) * {B}"


# ---- losses ---------------------------------------------------------------------------------
def _nll_args(ctx: Ctx, target: Arg, weight: Arg | None, ignore_index, reduction: str):
    t = str(target)
    if ctx.dtype(target) != ir.DataType.INT64:
        t = f"{target}.long()"
    args = [t]
    if weight is not None:
        args.append(f"weight={weight}")
    if ignore_index is not None:
        args.append(f"ignore_index={int(ignore_index)}")
    if reduction != "mean":
        args.append(f"reduction={reduction!r}")
    return args


@register("NegativeLogLikelihoodLoss", (12, 13, 22))
def nll_loss(ctx: Ctx, input: Arg, target: Arg, weight: Arg | None = None, *,
             ignore_index: int | None = None, reduction: str = "mean"):
    return f"F.nll_loss({', '.join([str(input)] + _nll_args(ctx, target, weight, ignore_index, reduction))})"


@register("SoftmaxCrossEntropyLoss", (12, 13))
def softmax_cross_entropy(ctx: Ctx, scores: Arg, labels: Arg, weights: Arg | None = None, *,
                          ignore_index: int | None = None, reduction: str = "mean"):
    rest = _nll_args(ctx, labels, weights, ignore_index, reduction)
    if len(ctx.node.outputs) < 2:
        return f"F.cross_entropy({', '.join([str(scores)] + rest)})"
    logp = ctx.out_names[1]
    ctx.line(f"{logp} = torch.log_softmax({scores}, dim=1)")
    ctx.line(f"{ctx.out_names[0]} = F.nll_loss({', '.join([logp] + rest)})")
    return None


# ---- recurrent blocks (opset 27) ------------------------------------------------------------
@register("LinearAttention", (27,))
def linear_attention(ctx: Ctx, query: Arg, key: Arg, value: Arg, past_state: Arg | None = None,
                     decay: Arg | None = None, beta: Arg | None = None, *,
                     chunk_size: int | None = None, kv_num_heads: int | None = None,
                     q_num_heads: int | None = None, scale: float | None = None,
                     update_rule: str = "gated_delta"):
    if q_num_heads is None or kv_num_heads is None:
        ctx.fail("LinearAttention needs q_num_heads and kv_num_heads")
    gating = update_rule in ("gated", "gated_delta")
    delta = update_rule in ("delta", "gated_delta")
    if update_rule not in ("linear", "gated", "delta", "gated_delta"):
        ctx.fail(f"unknown update_rule {update_rule!r}")
    if gating != (decay is not None) or delta != (beta is not None):
        ctx.fail(f"update_rule {update_rule!r} does not fit the decay/beta inputs given")
    fn = ctx.helper("_linear_attention")
    args = [str(query), str(key), str(value), str(past_state or "None"), str(decay or "None"),
            str(beta or "None"), str(q_num_heads), str(kv_num_heads)]
    if scale:
        args.append(f"scale={ctx.lit(float(scale))}")
    args.append(f"update_rule={update_rule!r}")
    call = f"{fn}({', '.join(args)})"
    return f"{call}[0]" if len(ctx.node.outputs) == 1 else call


@register("CausalConvWithState", (27,))
def causal_conv_with_state(ctx: Ctx, input: Arg, weight: Arg, bias: Arg | None = None,
                           past_state: Arg | None = None, *, activation: str = "none"):
    if activation not in ("none", "silu", "swish"):
        ctx.fail(f"unknown activation {activation!r}")
    wshape = ctx.shape(weight)
    k = wshape[2] if wshape is not None and wshape[2] is not None else None
    ksrc = str(k) if k is not None else f"{weight}.shape[2]"
    padded = ctx.tmp("padded")
    if past_state is not None:
        ctx.line(f"{padded} = torch.cat([{past_state}, {input}], dim=2)")
    else:
        ctx.line(f"{padded} = F.pad({input}, [{ksrc} - 1, 0])" if k is None
                 else f"{padded} = F.pad({input}, [{k - 1}, 0])")
    bias_s = f", {bias}" if bias is not None else ""
    y = f"F.conv1d({padded}, {weight}{bias_s}, groups={input}.shape[1])"
    if activation != "none":
        y = f"F.silu({y})"
    present = f"{padded}[:, :, {padded}.shape[2] - ({ksrc} - 1):]" if k is None \
        else f"{padded}[:, :, {padded}.shape[2] - {k - 1}:]"
    return [y, present][: len(ctx.node.outputs)]
