"""Helpers for reductions, softmax variants, attention and signal ops."""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F


def _reduce_fill(x: torch.Tensor, dims: List[int], keepdim: bool, value: float) -> torch.Tensor:
    """The result of reducing ``x`` over ``dims`` (all dims when empty) when that set of values
    is empty: a tensor of the reduced shape filled with ``value`` (ONNX's identity element)."""
    red = [d % x.dim() for d in dims] if len(dims) > 0 else list(range(x.dim()))
    shape: List[int] = []
    for d, s in enumerate(x.shape):
        if d in red:
            if keepdim:
                shape.append(1)
        else:
            shape.append(s)
    return torch.full(shape, value, dtype=x.dtype, device=x.device)



def _attention_bias(q_len: int, kv_len: int, offset: Optional[torch.Tensor], past: int,
                    is_causal: bool, left: int, right: int, dtype: torch.dtype,
                    device: torch.device) -> Optional[torch.Tensor]:
    """Additive causal / sliding-window bias (0 or -inf) aligned bottom-right: query ``i`` sits
    at position ``i + offset`` (``offset`` per batch, shape [B], or the scalar ``past``)."""
    if not is_causal and left < 0 and right < 0:
        return None
    i = torch.arange(q_len, device=device).reshape(q_len, 1)
    j = torch.arange(kv_len, device=device).reshape(1, kv_len)
    if offset is not None:
        diff = (i + offset.reshape(-1, 1, 1).to(i.dtype)) - j  # [B, q, kv]
    else:
        diff = (i + past) - j  # [q, kv]
    allowed = torch.ones_like(diff, dtype=torch.bool)
    if is_causal:
        allowed = allowed & (diff >= 0)
    if left >= 0:
        allowed = allowed & (diff <= left)
    if right >= 0:
        allowed = allowed & (-diff <= right)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, -math.inf)
    if offset is not None:
        bias = bias.unsqueeze(1)  # [B, 1, q, kv]
    return bias


def _onnx_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    attn_mask: Optional[torch.Tensor] = None,
                    past_key: Optional[torch.Tensor] = None,
                    past_value: Optional[torch.Tensor] = None,
                    nonpad_kv_seqlen: Optional[torch.Tensor] = None,
                    scale: Optional[float] = None, is_causal: bool = False,
                    q_num_heads: int = 0, kv_num_heads: int = 0, softcap: float = 0.0,
                    qk_matmul_output_mode: int = 0,
                    softmax_dtype: Optional[torch.dtype] = None,
                    left_window_size: int = -1, right_window_size: int = -1
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX Attention (opsets 23-25): returns (Y, present_key, present_value, qk_matmul_output).

    3-D inputs are [batch, seq, heads * head_size]; 4-D inputs are [batch, heads, seq, size].
    A query row that may attend no key gives zeros."""
    three_d = q.dim() == 3
    if three_d:
        b = q.shape[0]
        q = q.reshape(b, q.shape[1], q_num_heads, -1).transpose(1, 2)
        k = k.reshape(b, k.shape[1], kv_num_heads, -1).transpose(1, 2)
        v = v.reshape(b, v.shape[1], kv_num_heads, -1).transpose(1, 2)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[3])
    if past_key is not None:
        k = torch.cat([past_key, k], dim=2)
    if past_value is not None:
        v = torch.cat([past_value, v], dim=2)
    present_key, present_value = k, v
    q_len, kv_len = q.shape[2], k.shape[2]
    bias = torch.zeros((q_len, kv_len), dtype=q.dtype, device=q.device)
    if attn_mask is not None:
        pad = kv_len - attn_mask.shape[-1]
        if attn_mask.dtype == torch.bool:
            if pad > 0:
                attn_mask = F.pad(attn_mask, [0, pad], value=False)
            attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype,
                                    device=q.device).masked_fill(~attn_mask, -math.inf)
        elif pad > 0:
            attn_mask = F.pad(attn_mask, [0, pad], value=-math.inf)
        bias = bias + attn_mask
    offset: Optional[torch.Tensor] = None
    past = 0
    if past_key is not None:
        past = past_key.shape[2]
    elif nonpad_kv_seqlen is not None:
        offset = nonpad_kv_seqlen - q_len
    extra = _attention_bias(q_len, kv_len, offset, past, is_causal, left_window_size,
                            right_window_size, q.dtype, q.device)
    if extra is not None:
        bias = bias + extra
    if nonpad_kv_seqlen is not None:
        keep = torch.arange(kv_len, device=q.device).reshape(1, kv_len) < \
            nonpad_kv_seqlen.reshape(-1, 1)
        pad_bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(
            ~keep, -math.inf)
        bias = bias + pad_bias.reshape(q.shape[0], 1, 1, kv_len)
    if k.shape[1] != q.shape[1]:
        reps = q.shape[1] // k.shape[1]
        k = k.repeat_interleave(reps, dim=1)
        v = v.repeat_interleave(reps, dim=1)
    s = torch.tensor(math.sqrt(scale), dtype=q.dtype, device=q.device)
    scores = (q * s) @ (k * s).transpose(-1, -2)
    if softcap > 0:
        scores = torch.tanh(scores / softcap) * softcap
    qk = scores
    scores = scores + bias
    if qk_matmul_output_mode == 2:
        qk = scores
    if softmax_dtype is not None:
        scores = scores.to(softmax_dtype)
    # softmax written out, so each step rounds in the tensor's own precision as ONNX does
    probs = torch.exp(scores - torch.amax(scores, dim=-1, keepdim=True))
    probs = probs / probs.sum(dim=-1, keepdim=True)
    masked_row = torch.amax(bias, dim=-1, keepdim=True) == -math.inf
    probs = probs.masked_fill(masked_row, 0.0)
    if qk_matmul_output_mode == 3:
        qk = probs
    y = probs.to(q.dtype) @ v
    if three_d:
        y = y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)
    return y, present_key, present_value, qk.to(q.dtype)


_onnx_attention._nnport_deps = ("_attention_bias",)


def _rotary_embedding(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                      position_ids: Optional[torch.Tensor] = None, interleaved: bool = False,
                      rotary_dim: int = 0, num_heads: int = 0) -> torch.Tensor:
    """ONNX RotaryEmbedding: x is [B, heads, S, D] or [B, S, heads * D]; cos/sin are
    [max_pos, rotary_dim / 2] (indexed by position_ids) or [B, S, rotary_dim / 2]."""
    shape = x.shape
    if x.dim() == 4:
        x = x.transpose(1, 2)
    else:
        x = x.reshape(shape[0], shape[1], num_heads, -1)
    if rotary_dim == 0:
        rotary_dim = x.shape[3]
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    if position_ids is not None:
        cos, sin = cos[position_ids], sin[position_ids]
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot.chunk(2, dim=-1)
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    if interleaved:
        rot = torch.stack([real, imag], dim=-1).reshape(rot.shape)
    else:
        rot = torch.cat([real, imag], dim=-1)
    out = torch.cat([rot, rest], dim=-1)
    if len(shape) == 3:
        return out.reshape(shape)
    return out.transpose(1, 2)



def _onnx_dft(x: torch.Tensor, dft_length: Optional[int] = None, axis: int = -2,
              inverse: bool = False, onesided: bool = False) -> torch.Tensor:
    """ONNX DFT: ``x`` holds a real ([..., 1]) or complex ([..., 2]: real, imag) signal; the
    result is complex in the same layout (real [..., 1] for an inverse one-sided transform)."""
    axis = axis % x.dim()
    y = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if x.shape[-1] == 2:
        sig = torch.complex(y[..., 0], y[..., 1])
    else:
        sig = y[..., 0]
    if dft_length is None:
        dft_length = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    if inverse:
        if onesided:
            return torch.fft.irfft(sig, n=dft_length, dim=axis).unsqueeze(-1).to(x.dtype)
        out = torch.fft.ifft(sig, n=dft_length, dim=axis)
    else:
        out = torch.fft.fft(sig, n=dft_length, dim=axis)
        if onesided:
            out = out.narrow(axis, 0, dft_length // 2 + 1)
    return torch.stack([out.real, out.imag], dim=-1).to(x.dtype)


def _onnx_stft(x: torch.Tensor, frame_step: int, window: Optional[torch.Tensor] = None,
               frame_length: Optional[int] = None, onesided: bool = True) -> torch.Tensor:
    """ONNX STFT: ``x`` is [batch, length, 1 or 2]; returns [batch, frames, bins, 2]."""
    if frame_length is None:
        frame_length = window.shape[0] if window is not None else x.shape[1]
    if x.shape[-1] == 2:
        sig = torch.complex(x[..., 0], x[..., 1])
    else:
        sig = x[..., 0]
    frames = sig.unfold(1, frame_length, frame_step)  # [batch, frames, frame_length]
    if window is not None:
        frames = frames * window
    out = torch.fft.fft(frames, dim=-1)
    if onesided:
        out = out[..., : frame_length // 2 + 1]
    return torch.stack([out.real, out.imag], dim=-1).to(x.dtype)


def _mel_weight_matrix(num_mel_bins: int, dft_length: int, sample_rate: int,
                       lower_edge_hertz: float, upper_edge_hertz: float,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ONNX MelWeightMatrix: [dft_length // 2 + 1, num_mel_bins] triangular filters."""
    n_spec = dft_length // 2 + 1
    low = 2595.0 * math.log10(1.0 + lower_edge_hertz / 700.0)
    high = 2595.0 * math.log10(1.0 + upper_edge_hertz / 700.0)
    step = (high - low) / (num_mel_bins + 2)
    mel = torch.arange(num_mel_bins + 2, dtype=torch.float64) * step + low
    hz = 700.0 * torch.expm1(mel / 2595.0 * math.log(10.0))
    bins = torch.floor((dft_length + 1) * hz / sample_rate).to(torch.int64).tolist()
    out = torch.zeros(n_spec, num_mel_bins, dtype=torch.float64)
    for i in range(num_mel_bins):
        lo, mid, hi = bins[i], bins[i + 1], bins[i + 2]
        if mid == lo:
            out[mid, i] = 1.0
        else:
            for j in range(lo, mid + 1):
                out[j, i] = (j - lo) / (mid - lo)
        for j in range(mid, hi):
            out[j, i] = (hi - j) / (hi - mid)
    return out.to(dtype)



def _linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      past_state: Optional[torch.Tensor], decay: Optional[torch.Tensor],
                      beta: Optional[torch.Tensor], q_num_heads: int, kv_num_heads: int,
                      scale: float = 0.0, update_rule: str = "gated_delta"
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """ONNX LinearAttention: a recurrent state [B, H_kv, d_k, d_v] updated per time step
    (linear / gated / delta / gated_delta rules), read by each query; float32 inside."""
    b, t = q.shape[0], q.shape[1]
    d_k = q.shape[2] // q_num_heads
    d_v = v.shape[2] // kv_num_heads
    q4 = q.reshape(b, t, q_num_heads, d_k).transpose(1, 2).float()
    k4 = k.reshape(b, t, kv_num_heads, d_k).transpose(1, 2).float()
    v4 = v.reshape(b, t, kv_num_heads, d_v).transpose(1, 2).float()
    g4: Optional[torch.Tensor] = None
    if decay is not None:
        g4 = decay.reshape(b, t, kv_num_heads, -1).transpose(1, 2).float()
    b4: Optional[torch.Tensor] = None
    if beta is not None:
        b4 = beta.reshape(b, t, beta.shape[2], 1).transpose(1, 2).float()
    if past_state is not None:
        state = past_state.float()
        state_dtype = past_state.dtype
    else:
        state = torch.zeros(b, kv_num_heads, d_k, d_v, dtype=torch.float32, device=q.device)
        state_dtype = q.dtype
    if scale == 0.0:
        scale = 1.0 / math.sqrt(d_k)
    group = q_num_heads // kv_num_heads
    outs: List[torch.Tensor] = []
    for i in range(t):
        k_t, v_t = k4[:, :, i], v4[:, :, i]
        if g4 is not None and update_rule in ("gated", "gated_delta"):
            state = state * torch.exp(g4[:, :, i]).unsqueeze(-1)
        if b4 is not None and update_rule in ("delta", "gated_delta"):
            retrieved = torch.einsum("bhdm,bhd->bhm", state, k_t)
            v_t = b4[:, :, i] * (v_t - retrieved)
        state = state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
        read = state if group == 1 else state.repeat_interleave(group, dim=1)
        outs.append(scale * torch.einsum("bhd,bhdm->bhm", q4[:, :, i], read))
    out = torch.stack(outs, dim=2)  # [B, H_q, T, d_v]
    out = out.transpose(1, 2).reshape(b, t, q_num_heads * d_v).to(q.dtype)
    return out, state.to(state_dtype)


# ``from .h_math import *`` exports the helpers (their names start with an underscore).
__all__ = [_n for _n, _f in list(globals().items())
           if _n.startswith("_") and not _n.startswith("__") and callable(_f)
           and getattr(_f, "__module__", None) == __name__]
