"""Recurrent layers (ONNX LSTM / GRU / RNN) written as plain loops over time.

Used when ``nn.LSTM``/``nn.GRU``/``nn.RNN`` cannot express the node exactly (non-default
activations, clip, peepholes, coupled input/forget gate, GRU ``linear_before_reset=0``,
per-batch sequence lengths, weights computed at run time).  Shapes follow ONNX: ``W`` is
``[num_directions, gates * hidden, input]``, ``R`` ``[num_directions, gates * hidden, hidden]``,
``B`` ``[num_directions, 2 * gates * hidden]`` (input biases then recurrent biases), and the
gate order is ONNX's (LSTM i, o, f, c; GRU z, r, h).  ``acts`` lists ``(name, alpha, beta)``
for each activation, the forward direction's first.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["_rnn_act", "_rnn_run"]


def _rnn_act(x: torch.Tensor, act: Tuple[str, float, float]) -> torch.Tensor:
    """One of the activation functions the ONNX recurrent ops accept."""
    name, alpha, beta = act
    name = name.lower()
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "relu":
        return torch.relu(x)
    if name == "affine":
        return alpha * x + beta
    if name == "leakyrelu":
        return F.leaky_relu(x, alpha)
    if name == "thresholdedrelu":
        return torch.where(x > alpha, x, torch.zeros_like(x))
    if name == "scaledtanh":
        return alpha * torch.tanh(beta * x)
    if name == "hardsigmoid":
        return torch.clamp(alpha * x + beta, 0.0, 1.0)
    if name == "elu":
        return torch.where(x >= 0, x, alpha * (torch.exp(x) - 1))
    if name == "softsign":
        return x / (1 + torch.abs(x))
    if name == "softplus":
        return torch.log(1 + torch.exp(x))
    raise ValueError("unknown activation " + name)


def _rnn_run(kind: str, X: torch.Tensor, W: torch.Tensor, R: torch.Tensor,
             B: Optional[torch.Tensor] = None, seq_lens: Optional[torch.Tensor] = None,
             h0: Optional[torch.Tensor] = None, c0: Optional[torch.Tensor] = None,
             P: Optional[torch.Tensor] = None,
             direction: str = "forward", acts: Optional[List[Tuple[str, float, float]]] = None,
             clip: Optional[float] = None, input_forget: bool = False,
             linear_before_reset: bool = False, layout: int = 0):
    """Run an ONNX recurrent op (``kind`` is "LSTM", "GRU" or "RNN"); returns (Y, Y_h, Y_c)
    in the op's layout (Y_c is None unless ``kind == "LSTM"``)."""
    if layout == 1:  # batch-major -> time-major
        X = X.transpose(0, 1)
        h0 = None if h0 is None else h0.transpose(0, 1)
        c0 = None if c0 is None else c0.transpose(0, 1)
    steps, batch = X.shape[0], X.shape[1]
    n_dir, hidden = W.shape[0], R.shape[-1]
    if acts is None:  # the defaults: f=Sigmoid, g=Tanh, h=Tanh (RNN: Tanh)
        defaults = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
        names = defaults.get(kind, ["Tanh"])
        acts = [(n, 0.0, 0.0) for n in names] * n_dir
    per_dir = len(acts) // n_dir
    ys, hs, cs = [], [], []
    for d in range(n_dir):
        reverse = direction == "reverse" or d == 1
        w, r = W[d], R[d]
        wb = torch.zeros(w.shape[0], dtype=X.dtype, device=X.device)
        rb = wb
        if B is not None:
            wb, rb = B[d][:w.shape[0]], B[d][w.shape[0]:]
        f = acts[d * per_dir:(d + 1) * per_dir]
        h = X.new_zeros(batch, hidden)
        c = X.new_zeros(batch, hidden)
        if h0 is not None:
            h = h0[d]
        if c0 is not None:
            c = c0[d]
        xw = X @ w.t() + wb  # input projections for all steps at once
        outs: List[torch.Tensor] = [X.new_zeros(batch, hidden)] * steps
        for k in range(steps):
            t = steps - 1 - k if reverse else k
            gates_x = xw[t]
            if kind == "LSTM":
                gi, go, gf, gc = (gates_x + h @ r.t() + rb).chunk(4, 1)
                if P is not None:
                    pi, po, pf = P[d].chunk(3)
                    gi = gi + pi * c
                    gf = gf + pf * c
                if clip is not None:
                    gi, gf = gi.clamp(-clip, clip), gf.clamp(-clip, clip)
                    gc = gc.clamp(-clip, clip)
                i = _rnn_act(gi, f[0])
                fg = 1 - i if input_forget else _rnn_act(gf, f[0])
                c_new = fg * c + i * _rnn_act(gc, f[1])
                if P is not None:
                    go = go + P[d].chunk(3)[1] * c_new
                if clip is not None:
                    go = go.clamp(-clip, clip)
                h_new = _rnn_act(go, f[0]) * _rnn_act(c_new, f[2])
            elif kind == "GRU":
                hr = h @ r.t()
                zx, rx, hx = gates_x.chunk(3, 1)
                zh, rh, hh = hr.chunk(3, 1)
                rbz, rbr, rbh = rb.chunk(3)
                gz, gr = zx + zh + rbz, rx + rh + rbr
                if clip is not None:
                    gz, gr = gz.clamp(-clip, clip), gr.clamp(-clip, clip)
                z = _rnn_act(gz, f[0])
                rg = _rnn_act(gr, f[0])
                if linear_before_reset:
                    gh = hx + rg * (hh + rbh)
                else:
                    gh = hx + (rg * h) @ r[2 * hidden:].t() + rbh
                if clip is not None:
                    gh = gh.clamp(-clip, clip)
                h_new = (1 - z) * _rnn_act(gh, f[1]) + z * h
                c_new = c
            else:
                g = gates_x + h @ r.t() + rb
                if clip is not None:
                    g = g.clamp(-clip, clip)
                h_new = _rnn_act(g, f[0])
                c_new = c
            if seq_lens is not None:  # steps past a sequence's length keep the state
                valid = (t < seq_lens).unsqueeze(1)
                h_new = torch.where(valid, h_new, h)
                c_new = torch.where(valid, c_new, c)
                outs[t] = torch.where(valid, h_new, torch.zeros_like(h_new))
            else:
                outs[t] = h_new
            h, c = h_new, c_new
        ys.append(torch.stack(outs) if steps > 0 else X.new_zeros(0, batch, hidden))
        hs.append(h)
        cs.append(c)
    Y = torch.stack(ys, 1)  # [steps, dirs, batch, hidden]
    Y_h = torch.stack(hs)
    Y_c = torch.stack(cs) if kind == "LSTM" else None
    if layout == 1:
        Y = Y.permute(2, 0, 1, 3)
        Y_h = Y_h.transpose(0, 1)
        Y_c = None if Y_c is None else Y_c.transpose(0, 1)
    return Y, Y_h, Y_c


_rnn_run._nnport_deps = ("_rnn_act",)
