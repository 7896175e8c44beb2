"""onnxruntime contrib attention ops (domain ``com.microsoft``): Attention (fused QKV
projection, as the transformers optimizer writes for BERT and GPT-2), MultiHeadAttention,
GroupQueryAttention (with its KV cache) and RotaryEmbedding.

Attention and MultiHeadAttention print as the projection, head reshapes and
``F.scaled_dot_product_attention``; their masks follow onnxruntime (masked scores get
``mask_filter_value``, -10000 by default, added rather than -inf), built by the
``_ort_attention_mask`` helper.  GroupQueryAttention's per-batch cache positions are in the
``_group_query_attention`` helper.
"""
from __future__ import annotations

import math

import onnx_ir as ir

from ..emitter import Arg, Ctx, Transposed
from .op_contrib_basic import _used, assign, register_ms

_F32 = ir.DataType.FLOAT


def _heads(x: str, n: int) -> str:
    """(B, S, n * D) -> (B, n, S, D)"""
    return f"{x}.unflatten(-1, ({n}, -1)).transpose(1, 2)"


def _sdpa(ctx: Ctx, q: str, k: str, v: str, mask: str | None, scale: float | None,
          causal: bool = False) -> str:
    args = [q, k, v]
    if mask is not None:
        args.append(f"attn_mask={mask}")
    if causal:
        args.append("is_causal=True")
    if scale is not None:
        args.append(f"scale={ctx.lit(float(scale), _F32)}")
    return f"F.scaled_dot_product_attention({', '.join(args)})"


def _mask(ctx: Ctx, mask: Arg | None, bias: Arg | None, q: str, k: str, causal: bool,
          filter_value: float) -> str:
    m = ctx.tmp("attn_mask")
    fn = ctx.helper("_ort_attention_mask")
    ctx.line(f"{m} = {fn}({mask if mask is not None else 'None'}, "
             f"{bias if bias is not None else 'None'}, {q}.shape[0], {q}.shape[2], "
             f"{k}.shape[2], causal={causal}, "
             f"filter_value={ctx.lit(float(filter_value), _F32)}, dtype={q}.dtype)")
    return m


def _check_mask(ctx: Ctx, mask: Arg | None, x: Arg):
    s, xs = ctx.shape(mask), ctx.shape(x)
    if s is not None and len(s) == 1 and xs and xs[0] is not None and s[0] == 3 * xs[0] + 2:
        ctx.fail("a mask_index of shape (3 * batch + 2) is not supported")


def _attend(ctx: Ctx, q: str, k: str, v: str, mask: Arg | None, bias: Arg | None,
            causal: bool, has_past: bool, filter_value: float, scale: float | None) -> str:
    """The attention of (B, N, S, D) heads, back in (B, S, N * D)."""
    if mask is None and bias is None and not (causal and has_past):
        y = _sdpa(ctx, q, k, v, None, scale, causal=causal)
    else:
        m = _mask(ctx, mask, bias, q, k, causal, filter_value)
        y = _sdpa(ctx, q, k, v, m, scale)
    t = ctx.tmp("attn")
    ctx.line(f"{t} = {y}")
    return f"{t}.transpose(1, 2).flatten(2)"


@register_ms("Attention")
def attention(ctx: Ctx, input: Arg, weights: Arg, bias: Arg | None = None,
              mask_index: Arg | None = None, past: Arg | None = None,
              attention_bias: Arg | None = None, past_sequence_length: Arg | None = None, *,
              num_heads: int, qkv_hidden_sizes=None, unidirectional: int = 0,
              scale: float = 0.0, mask_filter_value: float = -10000.0, do_rotary: int = 0,
              past_present_share_buffer: int = 0, rotary_embedding_dim: int = 0):
    if do_rotary:
        ctx.fail("do_rotary is not supported")
    if past_present_share_buffer or past_sequence_length is not None:
        ctx.fail("past_present_share_buffer is not supported")
    _check_mask(ctx, mask_index, input)
    ws = ctx.shape(weights)
    if ws is None or len(ws) != 2 or None in ws:
        ctx.fail("Attention needs weights of known shape (input_hidden, q + k + v hidden)")
    sizes = list(qkv_hidden_sizes) if qkv_hidden_sizes else [ws[1] // 3] * 3
    head = sizes[0] // num_heads
    sc = float(scale) if scale else 1.0 / math.sqrt(head)
    w = ctx.const(weights)
    b = ctx.const(bias) if bias is not None else None
    qkv = ctx.tmp("qkv")
    if w is not None and (bias is None or b is not None):
        hint = ctx.module_hint(weights)
        args = f"{ws[0]}, {ws[1]}" + ("" if bias is not None else ", bias=False")
        mod = ctx.module(hint, f"nn.Linear({args})",
                         {"weight": Transposed(weights.value.const_value),
                          "bias": None if b is None else b.reshape(-1)})
        ctx.line(f"{qkv} = {mod}({input})")
    else:
        ctx.line(f"{qkv} = torch.matmul({input}, {weights})"
                 + (f" + {bias}" if bias is not None else ""))
    _split_attend(ctx, qkv, sizes, num_heads, past, mask_index, attention_bias,
                  unidirectional, mask_filter_value, sc)


def _split_attend(ctx: Ctx, qkv: str, sizes: list, num_heads: int, past: Arg | None,
                  mask_index: Arg | None, attention_bias: Arg | None, unidirectional: int,
                  mask_filter_value: float, sc: float) -> None:
    """Attention / QAttention after the QKV projection."""
    q, k, v = ctx.tmp("q"), ctx.tmp("k"), ctx.tmp("v")
    ctx.line(f"{q}, {k}, {v} = {qkv}.split({ctx.lit(sizes)}, dim=-1)")
    ctx.line(f"{q} = {_heads(q, num_heads)}")
    ctx.line(f"{k} = {_heads(k, num_heads)}")
    ctx.line(f"{v} = {_heads(v, num_heads)}")
    if past is not None:
        ctx.line(f"{k} = torch.cat([{past}[0], {k}], dim=2)")
        ctx.line(f"{v} = torch.cat([{past}[1], {v}], dim=2)")
    y = _attend(ctx, q, k, v, mask_index, attention_bias, bool(unidirectional),
                past is not None, mask_filter_value, sc)
    assign(ctx, [y, f"torch.stack([{k}, {v}])"])


@register_ms("QAttention")
def qattention(ctx: Ctx, input: Arg, weight: Arg, bias: Arg, input_scale: Arg,
               weight_scale: Arg, mask_index: Arg | None = None,
               input_zero_point: Arg | None = None, weight_zero_point: Arg | None = None,
               past: Arg | None = None, *, num_heads: int, unidirectional: int = 0,
               scale: float = 0.0, mask_filter_value: float = -10000.0, do_rotary: int = 0,
               past_present_share_buffer: int = 0):
    """Attention whose QKV projection is an int8 GEMM: ``input`` comes quantized (uint8, from
    a DynamicQuantizeLinear), ``weight`` is int8 with a per-tensor or per-column scale."""
    if do_rotary or past_present_share_buffer:
        ctx.fail("do_rotary / past_present_share_buffer are not supported")
    _check_mask(ctx, mask_index, input)
    ws = ctx.shape(weight)
    if ws is None or len(ws) != 2 or None in ws:
        ctx.fail("QAttention needs weights of known shape (input_hidden, 3 * hidden)")
    sizes = [ws[1] // 3] * 3
    sc = float(scale) if scale else 1.0 / math.sqrt(sizes[0] // num_heads)

    def shifted(x: Arg, zp: Arg | None) -> str:
        if zp is None:
            return f"{x}.double()"
        z = ctx.const(zp)
        if z is not None and z.size == 1:
            zv = int(z.reshape(()).item())
            return f"{x}.double()" if zv == 0 else f"({x}.double() - {zv})"
        return f"({x}.double() - {zp}.double())"

    qkv = ctx.tmp("qkv")
    ctx.line(f"{qkv} = torch.matmul({shifted(input, input_zero_point)}, "
             f"{shifted(weight, weight_zero_point)}).float() * ({input_scale} * {weight_scale})"
             f" + {bias}")
    _split_attend(ctx, qkv, sizes, num_heads, past, mask_index, None, unidirectional,
                  mask_filter_value, sc)


@register_ms("MultiHeadAttention")
def multi_head_attention(ctx: Ctx, query: Arg, key: Arg | None = None, value: Arg | None = None,
                         bias: Arg | None = None, key_padding_mask: Arg | None = None,
                         attention_bias: Arg | None = None, past_key: Arg | None = None,
                         past_value: Arg | None = None, past_sequence_length: Arg | None = None,
                         cache_indirection: Arg | None = None, *, num_heads: int,
                         unidirectional: int = 0, scale: float = 0.0,
                         mask_filter_value: float = -10000.0):
    if past_sequence_length is not None or cache_indirection is not None:
        ctx.fail("past_sequence_length / cache_indirection (buffer sharing, beam search) "
                 "are not supported")
    if _used(ctx, 3):
        ctx.fail("the qk output is not supported")
    _check_mask(ctx, key_padding_mask, query)
    n = num_heads
    q, k, v = ctx.tmp("q"), ctx.tmp("k"), ctx.tmp("v")
    qr, kr = ctx.rank(query), ctx.rank(key)
    if key is None:  # packed QKV: (B, S, N, 3, D)
        if bias is not None:
            ctx.fail("a bias with packed QKV is not supported")
        ctx.line(f"{q}, {k}, {v} = {query}.transpose(1, 2).unbind(3)")
    else:
        if qr != 3:
            ctx.fail("MultiHeadAttention needs a 3-D query of known rank")
        qb = kb = vb = None
        if bias is not None:
            qb, kb, vb = ctx.tmp("q_bias"), ctx.tmp("k_bias"), ctx.tmp("v_bias")
            ctx.line(f"{qb}, {kb}, {vb} = {bias}.split([{query}.shape[-1], {query}.shape[-1], "
                     f"{bias}.shape[0] - 2 * {query}.shape[-1]])")
        ctx.line(f"{q} = {_heads(f'({query} + {qb})' if qb else str(query), n)}")
        if kr == 5:  # packed KV: (B, L, N, 2, D)
            ctx.line(f"{k}, {v} = {key}.transpose(1, 2).unbind(3)")
        elif kr == 4:  # already (B, N, L, D): cross attention over cached keys and values
            ctx.line(f"{k}, {v} = {key}, {value}")
        elif kr == 3:
            ctx.line(f"{k} = {_heads(f'({key} + {kb})' if kb else str(key), n)}")
            ctx.line(f"{v} = {_heads(f'({value} + {vb})' if vb else str(value), n)}")
        else:
            ctx.fail("MultiHeadAttention needs a key of known rank")
    if past_key is not None and past_value is not None:
        ctx.line(f"{k} = torch.cat([{past_key}, {k}], dim=2)")
        ctx.line(f"{v} = torch.cat([{past_value}, {v}], dim=2)")
    qs = ctx.shape(query)
    head = None
    if key is None and qs and qs[-1] is not None:
        head = qs[-1]
    elif qs and qs[-1] is not None:
        head = qs[-1] // n
    if scale:
        sc = float(scale)
    elif head is not None:
        sc = 1.0 / math.sqrt(head)
    else:
        sc = None  # SDPA's default: 1/sqrt(head size), the same
    y = _attend(ctx, q, k, v, key_padding_mask, attention_bias, bool(unidirectional),
                past_key is not None, mask_filter_value, sc)
    assign(ctx, [y, k, v])


@register_ms("GroupQueryAttention")
def group_query_attention(ctx: Ctx, query: Arg, key: Arg | None = None,
                          value: Arg | None = None, past_key: Arg | None = None,
                          past_value: Arg | None = None, seqlens_k: Arg = None,
                          total_sequence_length: Arg = None, cos_cache: Arg | None = None,
                          sin_cache: Arg | None = None, position_ids: Arg | None = None,
                          attention_bias: Arg | None = None, head_sink: Arg | None = None,
                          k_scale: Arg | None = None, v_scale: Arg | None = None,
                          q_norm_weight: Arg | None = None, k_norm_weight: Arg | None = None,
                          query_seqlens: Arg | None = None, *, num_heads: int,
                          kv_num_heads: int, scale: float = 0.0, softcap: float = 0.0,
                          local_window_size: int = -1, do_rotary: int = 0,
                          rotary_interleaved: int = 0, causal: int = 1,
                          smooth_softmax: int = 0, qk_output: int = 0,
                          sliding_window_cache: int = 0, kv_cache_bit_width: int = 0,
                          k_quant_type: str = "NONE", v_quant_type: str = "NONE",
                          qk_norm_epsilon: float = 1e-6, q_norm_epsilon: float | None = None,
                          k_norm_epsilon: float | None = None):
    unsupported = [name for name, on in (
        ("a quantized KV cache", k_scale is not None or v_scale is not None
         or k_quant_type != "NONE" or v_quant_type != "NONE" or kv_cache_bit_width),
        ("only one of q_norm_weight / k_norm_weight",
         (q_norm_weight is None) != (k_norm_weight is None)),
        ("query_seqlens", query_seqlens is not None), ("qk_output", qk_output),
        ("sliding_window_cache", sliding_window_cache)) if on]
    if unsupported:
        ctx.fail(f"{', '.join(unsupported)} is not supported")
    qs = ctx.shape(query)
    hidden = qs[-1] if qs else None
    if key is None and hidden is not None:
        head = hidden // (num_heads + 2 * kv_num_heads)
    else:
        head = hidden // num_heads if hidden is not None else None
    if scale:
        sc = ctx.lit(float(scale), _F32)
    elif head is not None:
        sc = ctx.lit(1.0 / math.sqrt(head), _F32)
    else:
        sc = f"{query}.shape[-1] ** -0.5" if key is not None else None
        if sc is None:
            ctx.fail("packed QKV needs a query of known hidden size")
    fn = ctx.helper("_group_query_attention")
    none = "None"
    args = [str(query), str(key) if key is not None else none,
            str(value) if value is not None else none,
            str(past_key) if past_key is not None else none,
            str(past_value) if past_value is not None else none, str(seqlens_k),
            f"int({total_sequence_length})", f"num_heads={num_heads}",
            f"kv_num_heads={kv_num_heads}", f"scale={sc}"]
    if not causal:
        args.append("causal=False")
    if local_window_size >= 0:
        args.append(f"local_window={local_window_size}")
    if softcap:
        args.append(f"softcap={ctx.lit(float(softcap), _F32)}")
    if do_rotary:
        if cos_cache is None or sin_cache is None:
            ctx.fail("do_rotary needs cos_cache and sin_cache")
        args += [f"cos={cos_cache}", f"sin={sin_cache}"]
        if position_ids is not None:
            args.append(f"position_ids={position_ids}")
        if rotary_interleaved:
            args.append("interleaved=True")
    if attention_bias is not None:
        args.append(f"attention_bias={attention_bias}")
    if q_norm_weight is not None and k_norm_weight is not None:
        qe = qk_norm_epsilon if q_norm_epsilon is None else q_norm_epsilon
        ke = qk_norm_epsilon if k_norm_epsilon is None else k_norm_epsilon
        args += [f"q_norm={q_norm_weight}", f"k_norm={k_norm_weight}",
                 f"q_eps={ctx.lit(float(qe), _F32)}", f"k_eps={ctx.lit(float(ke), _F32)}"]
    if head_sink is not None:
        args.append(f"head_sink={head_sink}")
    elif smooth_softmax:
        args.append(f"head_sink={query}.new_zeros({num_heads})")
    return f"{fn}({', '.join(args)})"


@register_ms("RotaryEmbedding")
def rotary_embedding(ctx: Ctx, input: Arg, position_ids: Arg, cos_cache: Arg, sin_cache: Arg,
                     *, interleaved: int = 0, num_heads: int = 0, rotary_embedding_dim: int = 0,
                     scale: float = 1.0, is_packed_batching: int = 0):
    if is_packed_batching:
        ctx.fail("is_packed_batching is not supported")
    fn = ctx.helper("_rotary_embedding")
    ps = ctx.shape(position_ids)
    pos = str(position_ids)
    rank = ctx.rank(input)
    if rank is None:
        ctx.fail("RotaryEmbedding needs the input's rank")
    seq = f"{input}.shape[{1 if rank == 3 else 2}]"
    if ps is not None and len(ps) == 1:
        # one offset: positions offset, offset + 1, ... for every batch entry
        pos = ctx.tmp("position_ids")
        ctx.line(f"{pos} = ({position_ids} + torch.arange({seq}, device={input}.device))"
                 ".unsqueeze(0)")
    elif ps is None:
        pos = ctx.tmp("position_ids")
        ctx.line(f"{pos} = {position_ids} if {position_ids}.dim() == 2 else "
                 f"({position_ids} + torch.arange({seq}, device={input}.device)).unsqueeze(0)")
    args = [str(input), str(cos_cache), str(sin_cache), f"position_ids={pos}"]
    if interleaved:
        args.append("interleaved=True")
    rot = rotary_embedding_dim or None
    if rot:
        args.append(f"rotary_dim={rot}")
    if rank == 3:
        if num_heads:
            args.append(f"num_heads={num_heads}")
        else:
            # head size = 2 * cos_cache's width when the whole head rotates
            args.append(f"num_heads={input}.shape[-1] // (2 * {cos_cache}.shape[-1])")
    return f"{fn}({', '.join(args)})"
