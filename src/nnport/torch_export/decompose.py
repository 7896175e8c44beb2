"""Exact aten-level rewrites for calls torch.onnx's dynamo exporter cannot translate.

torch's own decompositions and the exporter's torchlib cover most of ATen; a few common calls
fall through both and the export fails:

* adaptive max pooling (1-D, 2-D, 3-D) whose output size does not divide the input size
  (torch's decomposition covers only the divisible and the global case);
* 3-D adaptive average pooling whose output size does not divide the input size;
* ``F.scaled_dot_product_attention`` on tensors that are not all 4-D (torchlib's translation
  asserts "only 4D query, key, and value are supported"; torch broadcasts any batch dims);
* ``nn.LSTM`` with ``proj_size``: ONNX's LSTM has no projection, and torchlib writes a graph
  that ONNX shape inference rejects without failing, so this one is rewritten before export
  (``mistranslated``): step by step over the (static) sequence;
* ``torch.atan2``: torchlib's graph is wrong where y is 0 or x is -0 (atan2(0, -1) = -pi), and
  marks 0/0 with IsNaN; rewritten before export too, with the axes as cases of their own.

Each rewrite here applies only to the calls that would fail, and returns ``NotImplemented``
for every other call, so the call stays as it was and the exporter translates it as before.
Adaptive pooling is separable: a window is a product of one interval per axis, so the max (or
mean) over it is the max (mean) along one axis of the max (mean) along the next.  Each axis
becomes one slice per output index (start floor(i*n/m), end ceil((i+1)*n/m)), a reduction
and a concat: plain Slice/ReduceMax/ReduceMean/Concat in ONNX.  The indices output of max
pooling (flat positions in the pooled plane, first maximum in the window, as torch) is a gather
through a constant table of window positions; it is dead code unless the model uses it.

Sizes must be known at export time on the pooled axes (a dynamic H or W leaves the call as it
is, and the export fails with the op named, as before).
"""
from __future__ import annotations

import math

import torch

aten = torch.ops.aten


def _windows(n_in: int, n_out: int) -> list[tuple[int, int]]:
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def _static(sizes) -> bool:
    return all(isinstance(s, int) for s in sizes)


def _out_sizes(x: torch.Tensor, output_size, k: int) -> list[int] | None:
    spatial = list(x.shape[-k:])
    out = list(output_size) if isinstance(output_size, (list, tuple)) else [output_size] * k
    out = [s if o is None else o for s, o in zip(spatial, out)]
    if not _static(spatial) or not _static(out) or 0 in out or 0 in spatial:
        return None
    return out


def _pool_separable(x: torch.Tensor, out: list[int], reduce: str) -> torch.Tensor:
    k = len(out)
    for j, m in enumerate(out):
        axis = x.dim() - k + j
        n = x.shape[axis]
        if m == n:
            continue
        parts = []
        for a, b in _windows(n, m):
            s = x.narrow(axis, a, b - a)
            parts.append(s.amax(axis, keepdim=True) if reduce == "max"
                         else s.mean(axis, keepdim=True))
        x = torch.cat(parts, axis) if len(parts) > 1 else parts[0]
    return x


def _max_indices(x: torch.Tensor, out: list[int]) -> torch.Tensor:
    """torch's indices output: the flat position in the pooled plane of each window's first
    maximum (row-major order inside the window, as torch's kernel scans it)."""
    k = len(out)
    spatial = list(x.shape[-k:])
    stride = 1
    table = None  # (m_0, ..., m_j, w_0, ..., w_j): flat positions, windows padded
    for j in range(k - 1, -1, -1):
        n, m = spatial[j], out[j]
        width = max(b - a for a, b in _windows(n, m))
        i = torch.arange(m, device=x.device)
        start = (i * n) // m
        length = -((-(i + 1) * n) // m) - start
        t = torch.arange(width, device=x.device)
        # a window shorter than the widest repeats its last position: the repeat follows the
        # original in the scan, so the first maximum is still the one torch reports
        pos = (start[:, None] + torch.minimum(t[None, :], length[:, None] - 1)) * stride
        if table is None:
            table = pos
        else:
            d = table.dim() // 2
            table = (pos.reshape([m] + [1] * d + [width] + [1] * d)
                     + table.reshape([1] + list(table.shape[:d]) + [1] + list(table.shape[d:])))
        stride *= n
    cells, width = table.shape[:k].numel(), table.shape[k:].numel()
    table = table.reshape(cells, width)
    lead = list(x.shape[:-k])
    flat = x.reshape(lead + [-1])
    vals = flat.index_select(-1, table.reshape(-1)).reshape(lead + [cells, width])
    pick = vals.argmax(-1, keepdim=True)
    idx = table.expand(lead + [cells, width]).gather(-1, pick)
    return idx.reshape(lead + out)


def _adaptive_max(k: int):
    def rewrite(x, output_size):
        out = _out_sizes(x, output_size, k)
        if out is None:
            return NotImplemented
        spatial = list(x.shape[-k:])
        if all(n % m == 0 for n, m in zip(spatial, out)):
            return NotImplemented  # torch's decomposition: MaxPool with kernel = stride
        return _pool_separable(x, out, "max"), _max_indices(x, out)
    rewrite.__name__ = f"adaptive_max_pool{k}d"
    return rewrite


def _adaptive_avg3d(x, output_size):
    out = _out_sizes(x, output_size, 3)
    if out is None:
        return NotImplemented
    spatial = list(x.shape[-3:])
    if all(n % m == 0 for n, m in zip(spatial, out)):
        if out == spatial:
            return x.clone()
        kernel = [n // m for n, m in zip(spatial, out)]
        return torch.nn.functional.avg_pool3d(x, kernel, kernel)
    return _pool_separable(x, out, "mean")


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
          enable_gqa=False):
    ranks = [t.dim() for t in (q, k, v)]
    if ranks == [4, 4, 4] and (attn_mask is None or attn_mask.dim() == 4):
        return NotImplemented
    if max(ranks) > 4 or min(ranks) < 2:
        return NotImplemented

    def as4d(t):
        return t if t is None or t.dim() == 4 else t.reshape([1] * (4 - t.dim()) + list(t.shape))

    y = aten.scaled_dot_product_attention(as4d(q), as4d(k), as4d(v), as4d(attn_mask), dropout_p,
                                          is_causal, scale=scale, enable_gqa=enable_gqa)
    rank = max(ranks)
    return y if rank == 4 else y.reshape(list(y.shape[4 - rank:]))


def _lstm(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """``nn.LSTM`` with ``proj_size``: ONNX's LSTM has no projection (h = W_hr (o * tanh c)
    feeds the recurrence), and torchlib writes an invalid graph for it.  Written out step by
    step (static sequence length): per layer and direction, the gates from the input and the
    projected state, the cell update, the projection."""
    dirs = 2 if bidirectional else 1
    per = (4 if has_biases else 2) + 1
    if len(params) != num_layers * dirs * per or x.dim() not in (2, 3) or \
            not isinstance(x.shape[1 if batch_first else 0], int) or (train and dropout):
        return NotImplemented  # no projection weights (the exporter's own path), or dynamic T
    batched = x.dim() == 3
    if not batched:
        x = x.unsqueeze(1)
        hx = [h.unsqueeze(1) for h in hx]
    elif batch_first:
        x = x.transpose(0, 1)
    steps = x.shape[0]
    hs, cs = [], []
    layer_in = x
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            w = params[k * per:(k + 1) * per]
            w_ih, w_hh, w_hr = w[0], w[1], w[-1]
            b = w[2] + w[3] if has_biases else None
            h, c = hx[0][k], hx[1][k]
            xs = torch.nn.functional.linear(layer_in, w_ih, b)  # all steps' input gates at once
            seq = [None] * steps
            for t in (range(steps - 1, -1, -1) if d else range(steps)):
                gi, gf, gg, go = (xs[t] + h @ w_hh.t()).chunk(4, -1)
                c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
                h = (torch.sigmoid(go) * torch.tanh(c)) @ w_hr.t()
                seq[t] = h
            outs.append(torch.stack(seq, 0))
            hs.append(h)
            cs.append(c)
        layer_in = torch.cat(outs, -1) if dirs == 2 else outs[0]
    y, h_n, c_n = layer_in, torch.stack(hs, 0), torch.stack(cs, 0)
    if not batched:
        return y.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
    return (y.transpose(0, 1) if batch_first else y), h_n, c_n


def _atan2(y, x):
    """``torch.atan2``.  torchlib's translation takes the quadrant from ``y > 0`` and never
    treats x = 0 apart: atan2(0, -1) came out -pi (torch: pi) and atan2(2, -0.0) -pi/2
    (torch: pi/2), and it marks 0/0 with IsNaN.  Here the axes are cases of their own and no
    branch divides by zero, so the graph has no IsNaN and every value is finite.  Exact except
    that a negative zero reads as +0 (atan2(-0.0, -1) is pi, torch: -pi): telling the zeros
    apart needs 1/x, which ncnn's reciprocal computes as NaN at 0."""
    if not (y.dtype.is_floating_point and x.dtype.is_floating_point) or y.dtype != x.dtype:
        return NotImplemented
    if y.shape != x.shape:
        y, x = torch.broadcast_tensors(y, x)
    half = torch.full_like(y, math.pi / 2)
    zero_x = x == 0
    a = torch.atan(y / torch.where(zero_x, torch.ones_like(x), x))
    turn = torch.where(y < 0, -2 * half, 2 * half)
    on_y_axis = torch.where(y == 0, torch.zeros_like(y), turn / 2)
    return torch.where(zero_x, on_y_axis, torch.where(x < 0, a + turn, a))


def table() -> dict:
    """The rewrites, keyed by the aten overload they apply to."""
    t = {
        aten.adaptive_max_pool2d.default: _adaptive_max(2),
        aten.adaptive_max_pool3d.default: _adaptive_max(3),
        aten.adaptive_avg_pool3d.default: _adaptive_avg3d,
        aten._adaptive_avg_pool3d.default: _adaptive_avg3d,
        aten.scaled_dot_product_attention.default: _sdpa,
        aten.lstm.input: _lstm,
        aten.atan2.default: _atan2,
    }
    if hasattr(aten, "adaptive_max_pool1d"):
        t[aten.adaptive_max_pool1d.default] = _adaptive_max(1)
    return t


def applies(program) -> bool:
    """Whether ``program`` (an ExportedProgram) calls an op this module rewrites."""
    ops = set(table())
    return any(n.op == "call_function" and n.target in ops for n in program.graph.nodes)


def _projected_lstm(node) -> bool:
    args = node.args
    if node.target is not aten.lstm.input or len(args) < 8:
        return False
    per = (4 if args[3] else 2) + 1
    return len(args[2]) == args[4] * (2 if args[7] else 1) * per


def mistranslated(program) -> bool:
    """Whether ``program`` calls an op the exporter translates into an invalid or wrong graph
    without failing (an LSTM with projections, atan2): such a program is rewritten before
    export."""
    return any(n.op == "call_function" and (_projected_lstm(n) or n.target is aten.atan2.default)
               for n in program.graph.nodes)


def run(program):
    """``program`` with the rewrites applied (calls they do not cover are kept as they are)."""
    return program.run_decompositions(table())
