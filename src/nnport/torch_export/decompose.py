"""Exact aten-level rewrites for calls torch.onnx's dynamo exporter cannot translate.

torch's own decompositions and the exporter's torchlib cover most of ATen; a few common calls
fall through both and the export fails:

* adaptive max pooling (1-D, 2-D, 3-D) whose output size does not divide the input size
  (torch's decomposition covers only the divisible and the global case);
* 3-D adaptive average pooling whose output size does not divide the input size;
* ``F.scaled_dot_product_attention`` on tensors that are not all 4-D (torchlib's translation
  asserts "only 4D query, key, and value are supported"; torch broadcasts any batch dims).

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


def table() -> dict:
    """The rewrites, keyed by the aten overload they apply to."""
    t = {
        aten.adaptive_max_pool2d.default: _adaptive_max(2),
        aten.adaptive_max_pool3d.default: _adaptive_max(3),
        aten.adaptive_avg_pool3d.default: _adaptive_avg3d,
        aten._adaptive_avg_pool3d.default: _adaptive_avg3d,
        aten.scaled_dot_product_attention.default: _sdpa,
    }
    if hasattr(aten, "adaptive_max_pool1d"):
        t[aten.adaptive_max_pool1d.default] = _adaptive_max(1)
    return t


def applies(program) -> bool:
    """Whether ``program`` (an ExportedProgram) calls an op this module rewrites."""
    ops = set(table())
    return any(n.op == "call_function" and n.target in ops for n in program.graph.nodes)


def run(program):
    """``program`` with the rewrites applied (calls they do not cover are kept as they are)."""
    return program.run_decompositions(table())
