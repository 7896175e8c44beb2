"""Helpers for onnxruntime's contrib ops (com.microsoft): attention masks and the KV cache of
GroupQueryAttention, block-quantized weights, integer-quantized elementwise math."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .h_quant import _dynamic_quantize_linear

__all__ = ["_ort_attention_mask", "_group_query_attention", "_rope", "_unpack_bits",
           "_dequantize_nbits", "_int8_blocks", "_gather_block_quantized", "_dq_matmul",
           "_dynamic_quantize_lstm"]


def _ort_attention_mask(mask: Optional[torch.Tensor], bias: Optional[torch.Tensor], batch: int,
                        q_len: int, total_len: int, causal: bool, filter_value: float,
                        dtype: torch.dtype) -> Optional[torch.Tensor]:
    """The additive mask onnxruntime's Attention / MultiHeadAttention put on the scores.

    ``mask`` (int32) is a raw 0/1 key mask (B, T) or (B, S, T), or (B,) key lengths of a
    right-padded batch, or (2B,) end positions then start positions.  Masked keys, and with
    ``causal`` the keys after each query (queries are the last ``q_len`` of ``total_len``
    positions), get ``filter_value`` (-10000 by default: not -inf, as in onnxruntime).
    ``bias`` (attention_bias) is added as is."""
    out: Optional[torch.Tensor] = None
    if mask is not None:
        j = torch.arange(total_len, device=mask.device)
        if mask.dim() == 1:
            keep = j.unsqueeze(0) < mask[:batch].unsqueeze(1)
            if mask.shape[0] == 2 * batch:
                keep = keep & (j.unsqueeze(0) >= mask[batch:].unsqueeze(1))
            keep = keep[:, None, None, :]
        elif mask.dim() == 2:
            keep = (mask > 0)[:, None, None, :]
        elif mask.dim() == 3:
            keep = (mask > 0)[:, None, :, :]
        else:  # (B, 1, max_len, max_len): the rows of the new queries
            past = total_len - q_len
            keep = mask[:, :, past:past + q_len, :total_len] > 0
        out = torch.where(keep, 0.0, filter_value).to(dtype)
    if causal:
        i = torch.arange(q_len).unsqueeze(1) + (total_len - q_len)
        j = torch.arange(total_len).unsqueeze(0)
        c = torch.where(j <= i, 0.0, filter_value).to(dtype)
        out = c if out is None else out + c
    if bias is not None:
        out = bias if out is None else out + bias
    return out


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
          interleaved: bool = False) -> torch.Tensor:
    """Rotary embedding of x (B, heads, S, D) with cos / sin (B, S, R / 2) on the first R
    channels (the rest pass through)."""
    rot_dim = cos.shape[-1] * 2
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rot, rest = x[..., :rot_dim], x[..., rot_dim:]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        rot = torch.stack([cos * x1 - sin * x2, sin * x1 + cos * x2], dim=-1).flatten(-2)
    else:
        x1, x2 = rot.chunk(2, dim=-1)
        rot = torch.cat([cos * x1 - sin * x2, sin * x1 + cos * x2], dim=-1)
    return torch.cat([rot, rest], dim=-1)


def _group_query_attention(q: torch.Tensor, k: Optional[torch.Tensor],
                           v: Optional[torch.Tensor], past_k: Optional[torch.Tensor],
                           past_v: Optional[torch.Tensor], seqlens_k: torch.Tensor,
                           total_len: int, num_heads: int, kv_num_heads: int, scale: float,
                           causal: bool = True, local_window: int = -1, softcap: float = 0.0,
                           cos: Optional[torch.Tensor] = None,
                           sin: Optional[torch.Tensor] = None,
                           position_ids: Optional[torch.Tensor] = None,
                           interleaved: bool = False,
                           attention_bias: Optional[torch.Tensor] = None,
                           head_sink: Optional[torch.Tensor] = None,
                           q_norm: Optional[torch.Tensor] = None,
                           k_norm: Optional[torch.Tensor] = None, q_eps: float = 1e-6,
                           k_eps: float = 1e-6
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """onnxruntime GroupQueryAttention with its KV cache (BNSH).  Batch entry b holds
    ``seqlens_k[b] + 1`` tokens after this step; its new keys/values are written after its
    past tokens (at 0 for the first prompt, where the batch may be right-padded).  Returns the
    output (B, S, heads * D) and the present key / value caches.  ``head_sink`` (heads,) adds
    exp(sink) to each head's softmax denominator (smooth softmax: zeros).  ``q_norm`` /
    ``k_norm`` (D,): an RMS norm of each head of q and k before the rotary embedding."""
    B, S = q.shape[0], q.shape[1]
    if k is None or v is None:  # packed QKV
        d = q.shape[2] // (num_heads + 2 * kv_num_heads)
        q, k, v = q.split([num_heads * d, kv_num_heads * d, kv_num_heads * d], dim=-1)
    D = q.shape[2] // num_heads
    q = q.reshape(B, S, num_heads, D).transpose(1, 2)
    k = k.reshape(B, S, kv_num_heads, D).transpose(1, 2)
    v = v.reshape(B, S, kv_num_heads, D).transpose(1, 2)
    total = seqlens_k.long() + 1
    P = past_k.shape[2] if past_k is not None else 0
    if S == total_len:  # first prompt
        past_len = torch.zeros_like(total)
    else:
        past_len = total - S
    pos = past_len.unsqueeze(1) + torch.arange(S, device=q.device).unsqueeze(0)  # (B, S)
    if q_norm is not None and k_norm is not None:
        q = F.rms_norm(q, (D,), q_norm, q_eps)
        k = F.rms_norm(k, (D,), k_norm, k_eps)
    if cos is not None and sin is not None:
        p = position_ids if position_ids is not None else pos
        q = _rope(q, cos[p], sin[p], interleaved)
        k = _rope(k, cos[p], sin[p], interleaved)
    T = max(P, total_len)
    idx = pos[:, None, :, None].expand(B, kv_num_heads, S, D)
    present_k = q.new_zeros(B, kv_num_heads, T, D)
    present_v = q.new_zeros(B, kv_num_heads, T, D)
    if past_k is not None and past_v is not None and P > 0:
        present_k[:, :, :P] = past_k
        present_v[:, :, :P] = past_v
    present_k = present_k.scatter(2, idx, k)
    present_v = present_v.scatter(2, idx, v)
    j = torch.arange(T, device=q.device)
    keep = (j[None, None, :] < total[:, None, None]).expand(B, S, T)
    if causal:
        keep = keep & (j[None, None, :] <= pos[:, :, None])
        if local_window >= 0:
            # the window holds local_window keys, the query's own included
            keep = keep & (j[None, None, :] > pos[:, :, None] - local_window)
    groups = num_heads // kv_num_heads
    kk = present_k.repeat_interleave(groups, dim=1)
    vv = present_v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, kk.transpose(-2, -1)) * scale
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    if attention_bias is not None:
        scores[..., :attention_bias.shape[-1]] += attention_bias
    scores = scores.masked_fill(~keep[:, None], float("-inf"))
    if head_sink is not None:  # one more logit per head, dropped after the softmax
        sink = head_sink.to(scores.dtype).reshape(1, -1, 1, 1).expand(B, num_heads, S, 1)
        scores = torch.cat([scores, sink], dim=-1)
    probs = torch.softmax(scores.float(), dim=-1).nan_to_num(0.0).to(q.dtype)
    if head_sink is not None:
        probs = probs[..., :-1]
    out = torch.matmul(probs, vv).transpose(1, 2).reshape(B, S, num_heads * D)
    return out, present_k, present_v


def _unpack_bits(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 bytes holding 8 // bits values each, low bits first -> one value per element
    along the last dim (which grows by 8 // bits)."""
    if bits == 8:
        return packed
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
    vals = (packed.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return vals.flatten(-2)


def _dequantize_nbits(packed: torch.Tensor, scales: torch.Tensor,
                      zero_points: Optional[torch.Tensor], bits: int, block_size: int,
                      k: int) -> torch.Tensor:
    """MatMulNBits weights: packed (N, k_blocks, block_size * bits / 8) uint8, scales
    (N, k_blocks), zero points packed uint8 (N, ceil(k_blocks * bits / 8)) or float
    (N, k_blocks) or None (2^(bits - 1)) -> the (N, K) float weight (an nn.Linear weight)."""
    n, k_blocks = scales.shape[0], scales.shape[-1]
    q = _unpack_bits(packed, bits).reshape(n, k_blocks, -1).to(scales.dtype)
    if zero_points is None:
        zp = torch.full_like(scales, float(1 << (bits - 1)))
    elif zero_points.dtype == torch.uint8:
        zp = _unpack_bits(zero_points, bits)[:, :k_blocks].to(scales.dtype)
    else:
        zp = zero_points.reshape(n, k_blocks)
    w = (q - zp.unsqueeze(-1)) * scales.reshape(n, k_blocks).unsqueeze(-1)
    return w.reshape(n, -1)[:, :k]


def _int8_blocks(a: torch.Tensor, block_size: int) -> torch.Tensor:
    """``a`` rounded as onnxruntime's int8 compute path (MatMulNBits accuracy_level 4) rounds
    it: symmetric int8 with one scale (max |a| / 127) per block of ``block_size`` along K."""
    k = a.shape[-1]
    x = F.pad(a, (0, (-k) % block_size)).unflatten(-1, (-1, block_size))
    scale = x.abs().amax(-1, keepdim=True) / 127
    inv = torch.where(scale != 0, 1 / scale, torch.zeros_like(scale))
    return (torch.round(x * inv) * scale).flatten(-2)[..., :k]


def _gather_block_quantized(data: torch.Tensor, indices: torch.Tensor, scales: torch.Tensor,
                            zero_points: Optional[torch.Tensor], bits: int, block_size: int,
                            gather_axis: int, quantize_axis: int, default_zp: int,
                            packed: bool) -> torch.Tensor:
    """GatherBlockQuantized: gather along ``gather_axis`` (out-of-range indices give zeros),
    then dequantize (q - zero point) * scale with blocks of ``block_size`` along
    ``quantize_axis``.  ``packed``: uint8 data holding 8 // bits values per byte along the last
    dim (zero points likewise)."""
    n = data.shape[gather_axis]
    idx = torch.where(indices < 0, indices + n, indices).long()
    valid = (idx >= 0) & (idx < n)
    flat = idx.clamp(0, n - 1).reshape(-1)
    out_shape = list(data.shape[:gather_axis]) + list(indices.shape)
    if gather_axis != quantize_axis:
        # gather the rows first: only they are dequantized
        data = data.index_select(gather_axis, flat)
        scales = scales.index_select(gather_axis, flat)
        if zero_points is not None:
            zero_points = zero_points.index_select(gather_axis, flat)
    if packed:
        data = _unpack_bits(data, bits)
        if zero_points is not None:
            zero_points = _unpack_bits(zero_points, bits)
    size = data.shape[quantize_axis]
    scale = scales.repeat_interleave(block_size, dim=quantize_axis).narrow(quantize_axis, 0, size)
    if zero_points is None:
        zp = torch.full_like(scale, float(default_zp))
    else:
        zp = zero_points.repeat_interleave(block_size, dim=quantize_axis)
        zp = zp.narrow(quantize_axis, 0, size).to(scale.dtype)
    out = (data.to(scale.dtype) - zp) * scale
    if gather_axis == quantize_axis:
        out = out.index_select(gather_axis, flat)
    out = out.reshape(out_shape + list(out.shape[gather_axis + 1:]))
    keep = valid.reshape([1] * gather_axis + list(indices.shape)
                         + [1] * (out.dim() - gather_axis - indices.dim()))
    return torch.where(keep, out, torch.zeros_like(out))


def _dq_matmul(a: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor,
               w_zero_point: torch.Tensor) -> torch.Tensor:
    """onnxruntime's int8 GEMM for a float ``a`` (M, K): ``a`` is quantized to uint8 on the fly
    (one scale for the whole matrix, as DynamicQuantizeLinear), multiplied exactly with the
    int8 ``w`` (K, N), and the int32 result scaled back to float."""
    a_q, a_scale, a_zp = _dynamic_quantize_linear(a)
    acc = torch.matmul(a_q.double() - a_zp.double(), w.double() - w_zero_point.double())
    return acc.float() * (a_scale * w_scale)


def _dynamic_quantize_lstm(x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor,
                           w_zero_point: torch.Tensor, r: torch.Tensor, r_scale: torch.Tensor,
                           r_zero_point: torch.Tensor, bias: Optional[torch.Tensor],
                           seq_lens: Optional[torch.Tensor], h0: Optional[torch.Tensor],
                           c0: Optional[torch.Tensor], peephole: Optional[torch.Tensor],
                           hidden: int, direction: str = "forward", input_forget: bool = False,
                           output_sequence: bool = True, threads: int = 0
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """onnxruntime's DynamicQuantizeLSTM: an ONNX LSTM (gates i, o, f, c) whose two GEMMs take
    int8 weights w (D, input, 4H) and r (D, H, 4H) with per-direction (or per-column) scales and
    zero points; the inputs of each GEMM are quantized to uint8 on the fly: all time steps of x
    at once (up to the longest sequence), h once per step.  Returns Y (T, D, B, H), Y_h, Y_c.

    onnxruntime splits the batch among its threads for the recurrent GEMM when B > 4, or
    B >= 2 and H <= 256, and each thread quantizes its own rows: ``threads`` is that thread
    count (0: one per sequence, each sequence quantized on its own)."""
    T, B = x.shape[0], x.shape[1]
    D = w.shape[0]
    lens = (seq_lens.long() if seq_lens is not None
            else torch.full((B,), T, dtype=torch.long, device=x.device))
    steps = int(lens.max())
    t_idx = torch.arange(T, device=x.device).unsqueeze(1)
    chunk = B
    if B > 4 or (B >= 2 and hidden <= 256):
        chunk = -(-B // threads) if threads > 0 else 1
    ys, hs, cs = [], [], []
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        xd = x
        if reverse:  # each sequence reversed within its own length
            src = torch.where(t_idx < lens, lens - 1 - t_idx, t_idx)
            xd = x.gather(0, src.unsqueeze(-1).expand(T, B, x.shape[2]))
        proj = _dq_matmul(xd[:steps].reshape(steps * B, -1), w[d], w_scale[d], w_zero_point[d])
        proj = proj.reshape(steps, B, 4 * hidden)
        if bias is not None:
            proj = proj + (bias[d, :4 * hidden] + bias[d, 4 * hidden:])
        h = h0[d] if h0 is not None else x.new_zeros(B, hidden)
        c = c0[d] if c0 is not None else x.new_zeros(B, hidden)
        gemm_in = h
        y = x.new_zeros(T, B, hidden)
        # peepholes (zeros without: adding 0 * c changes nothing)
        pi, po, pf = (peephole[d] if peephole is not None
                      else x.new_zeros(3 * hidden)).chunk(3)
        for t in range(steps):
            rec = [_dq_matmul(rows, r[d], r_scale[d], r_zero_point[d])
                   for rows in gemm_in.split(chunk)]
            gates = proj[t] + torch.cat(rec)
            gi, go, gf, gc = gates.chunk(4, dim=-1)
            i = torch.sigmoid(gi + pi * c)
            f = 1 - i if input_forget else torch.sigmoid(gf + pf * c)
            c_new = f * c + i * torch.tanh(gc)
            h_new = torch.sigmoid(go + po * c_new) * torch.tanh(c_new)
            active = (t < lens).unsqueeze(1)
            c = torch.where(active, c_new, c)
            h = torch.where(active, h_new, h)
            y[t] = torch.where(active, h_new, torch.zeros_like(h_new))
            # the next GEMM reads this step's output rows (zeros where a sequence has ended)
            gemm_in = y[t] if output_sequence else h
        if reverse:
            src = torch.where(t_idx < lens, lens - 1 - t_idx, t_idx)
            y = y.gather(0, src.unsqueeze(-1).expand(T, B, hidden))
        ys.append(y)
        hs.append(h)
        cs.append(c)
    return torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)


_dq_matmul._nnport_deps = ("_dynamic_quantize_linear",)
_dynamic_quantize_lstm._nnport_deps = ("_dq_matmul",)
_group_query_attention._nnport_deps = ("_rope",)
_dequantize_nbits._nnport_deps = ("_unpack_bits",)
_gather_block_quantized._nnport_deps = ("_unpack_bits",)
