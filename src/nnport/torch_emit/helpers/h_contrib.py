"""Helpers for onnxruntime's contrib ops (com.microsoft): attention masks and the KV cache of
GroupQueryAttention, block-quantized weights, integer-quantized elementwise math."""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["_ort_attention_mask", "_group_query_attention", "_rope", "_unpack_int4",
           "_dequantize_blocks", "_dynamic_quantize_lstm"]


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
                           attention_bias: Optional[torch.Tensor] = None
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """onnxruntime GroupQueryAttention with its KV cache (BNSH).  Batch entry b holds
    ``seqlens_k[b] + 1`` tokens after this step; its new keys/values are written after its
    past tokens (at 0 for the first prompt, where the batch may be right-padded).  Returns the
    output (B, S, heads * D) and the present key / value caches."""
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
    probs = torch.softmax(scores.float(), dim=-1).nan_to_num(0.0).to(q.dtype)
    out = torch.matmul(probs, vv).transpose(1, 2).reshape(B, S, num_heads * D)
    return out, present_k, present_v


_group_query_attention._nnport_deps = ("_rope",)
