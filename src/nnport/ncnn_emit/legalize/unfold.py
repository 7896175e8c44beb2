"""F.unfold (im2col) written out as gathers -> one ``nnport::Unfold`` node (ncnn only).

torch's dynamo exporter writes ``F.unfold(x, k, dilation, padding, stride)`` of an (N, C, H, W)
image as Pad (constant) -> Gather on H with a constant (kh, oh) index -> Gather on W with a
constant (kw, ow) index (a rank-6 (N, C, kh, oh, kw, ow) value ncnn cannot hold) -> Transpose
-> Reshape to (N, C*kh*kw, oh*ow).  ncnn's Unfold layer is that im2col.

The region is recognized by what it computes.  From a Gather on axis -2 of a rank-4 value
with a constant 2-D index whose rows and columns step evenly from 0 (index[u, i] = u*d + i*s:
kernel tap u, output row i), and a single reader of it that gathers axis -1 the same way:

- the source ``x`` is the Pad's input when the first gather reads a constant-mode Pad of H and
  W only (its pads and value become the layer's), else the gathered value itself;
- the output ``y`` is the first value a few single-reader steps below the second gather of
  shape (N, C*kh*kw, oh*ow), where oh, ow are the sizes ncnn's Unfold computes from the padded
  size, kernel, dilation and stride;
- every node between them reads only ``x`` and constants, and nothing outside reads what the
  region computes after the Pad;
- the region, run by onnx's reference evaluator on a random input, equals im2col of ``x``
  with those parameters exactly (it only moves numbers).

Then ``y`` is computed by one ``nnport::Unfold(x)`` node (``kernel_shape``, ``dilations``,
``strides``, ``pads`` in ONNX's [top, left, bottom, right], ``value``).  Anything else is left
alone and converts as before or fails with the gather's own error, never to other numbers.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...passes.match import finish, is_op
from .adaptive_pool import (MAX_ELEMENTS, _between, _Facts, _run_region, _self_contained,
                            substitute)

OP = "Unfold"
MAX_DOWN_STEPS = 4  # single-reader steps from the second gather to the output


def _steps(idx) -> tuple[int, int, int, int] | None:
    """(taps, outputs, dilation, stride) of a gather index ``u*d + i*s``, else None."""
    if idx is None:
        return None
    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.dtype.kind not in "iu" or 0 in idx.shape:
        return None
    k, o = idx.shape
    d = int(idx[1, 0] - idx[0, 0]) if k > 1 else 1
    s = int(idx[0, 1] - idx[0, 0]) if o > 1 else 1
    want = d * np.arange(k)[:, None] + s * np.arange(o)[None, :]
    if d < 1 or s < 1 or not np.array_equal(idx, want):
        return None
    return k, o, d, s


def _axis(node: ir.Node, rank: int) -> int:
    a = node.attributes.get("axis")
    a = int(a.value) if a is not None else 0
    return a + rank if a < 0 else a


def _pad_of(facts: _Facts, v: ir.Value):
    """(source, [top, left, bottom, right], value) when ``v`` is a constant-mode Pad of the
    last two axes of a rank-4 tensor, else (v, [0, 0, 0, 0], 0.0)."""
    p = v.producer()
    none = (v, [0, 0, 0, 0], 0.0)
    if not is_op(p, "Pad") or len(p.inputs) < 2 or len(p.inputs) > 3 or p.inputs[0] is None:
        return none
    mode = p.attributes.get("mode")
    mode = mode.value if mode is not None else "constant"
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = facts.const(p.inputs[1])
    val = facts.const(p.inputs[2]) if len(p.inputs) > 2 and p.inputs[2] is not None else 0.0
    if mode != "constant" or pads is None or np.size(pads) != 8 or np.size(val) != 1:
        return none
    pads = [int(q) for q in np.ravel(pads)]
    if any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
        return none
    return p.inputs[0], [pads[2], pads[3], pads[6], pads[7]], float(np.ravel(val)[0])


def im2col(x: np.ndarray, k, d, s, pads, value) -> np.ndarray:
    """F.unfold of (N, C, H, W) ``x`` as ncnn's Unfold computes it (sizes from the padded
    image: o = (size - d*(k-1) - 1) // s + 1)."""
    t, left, b, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=value)
    n, c, hp, wp = xp.shape
    oh, ow = ((hp - d[0] * (k[0] - 1) - 1) // s[0] + 1, (wp - d[1] * (k[1] - 1) - 1) // s[1] + 1)
    if oh < 1 or ow < 1:
        return np.empty((n, c * k[0] * k[1], 0), x.dtype)
    cols = [xp[:, :, u * d[0]:u * d[0] + s[0] * (oh - 1) + 1:s[0],
               v * d[1]:v * d[1] + s[1] * (ow - 1) + 1:s[1]]
            for u in range(k[0]) for v in range(k[1])]
    return np.stack(cols, 2).reshape(n, c * k[0] * k[1], oh * ow)


def _match(facts: _Facts, g1: ir.Node, order: dict):
    """(x, y, attributes) of the unfold ``g1`` starts, or None."""
    data = g1.inputs[0]
    ds = facts.shape(data)
    if ds is None or len(ds) != 4 or _axis(g1, 4) != 2:
        return None
    rows = _steps(facts.const(g1.inputs[1]))
    uses = g1.outputs[0].uses()
    if rows is None or len(uses) != 1 or g1.outputs[0].is_graph_output():
        return None
    g2 = uses[0].node
    if not is_op(g2, "Gather") or g2.inputs[0] is not g1.outputs[0] or _axis(g2, 5) != 4:
        return None
    cols = _steps(facts.const(g2.inputs[1]))
    if cols is None:
        return None
    x, pads, value = _pad_of(facts, data)
    xs = facts.shape(x)
    if xs is None or facts.varies(x) or x.dtype not in (None, ir.DataType.FLOAT) or \
            int(np.prod(xs)) > MAX_ELEMENTS:
        return None
    k, d, s = (rows[0], cols[0]), (rows[2], cols[2]), (rows[3], cols[3])
    n, c = xs[:2]
    want = (n, c * k[0] * k[1], rows[1] * cols[1])
    y = g2.outputs[0]
    for _ in range(MAX_DOWN_STEPS):
        uses = y.uses()
        if len(uses) != 1 or y.is_graph_output():
            return None
        y = uses[0].node.outputs[0] if uses[0].node.outputs else None
        if y is None:
            return None
        if facts.shape(y) == want:
            break
    else:
        return None
    region = _between(facts, x, y, order)
    if region is None or not any(nd is g2 for nd in region):
        return None
    pad = data.producer() if x is not data else None
    if not _self_contained(region, {id(pad)} if pad is not None else set(), y):
        return None
    feed = np.random.default_rng(20260723).standard_normal(xs).astype(np.float32)
    try:
        got = _run_region(facts, region, x, y, [feed])
    except Exception:
        return None
    ref = im2col(feed, k, d, s, pads, value)
    if got is None or got[0].shape != ref.shape or not np.array_equal(got[0], ref):
        return None
    return x, y, {"kernel_shape": list(k), "dilations": list(d), "strides": list(s),
                  "pads": pads, "value": value}


def fuse_unfolds(model: ir.Model, *, probe=None) -> PassResult:
    """Replace every gather-built F.unfold of the main graph by one ``nnport::Unfold`` node.
    ``probe``: the ncnn probe (constants and shapes it computed)."""
    facts = _Facts(model, probe)
    graph = model.graph
    count, order = 0, None
    for node in list(graph):
        if node.graph is None or not is_op(node, "Gather") or len(node.inputs) != 2 or \
                node.inputs[0] is None or facts.is_const(node.inputs[0]) or \
                len(facts.shape(node.inputs[0]) or ()) != 4 or \
                _steps(facts.const(node.inputs[1])) is None:
            continue
        if order is None:  # graph positions, again after each change
            order = {id(n): i for i, n in enumerate(graph)}
        try:
            m = _match(facts, node, order)
        except Exception:  # a graph this search did not foresee: left as it is
            m = None
        if m is None:
            continue
        x, y, attrs = m
        substitute(model, OP, x, y, [
            ir.AttrInt64s("kernel_shape", attrs["kernel_shape"]),
            ir.AttrInt64s("dilations", attrs["dilations"]),
            ir.AttrInt64s("strides", attrs["strides"]),
            ir.AttrInt64s("pads", attrs["pads"]),
            ir.AttrFloat32("value", attrs["value"])], (node.name or "gather") + "_unfold")
        count, order = count + 1, None
    return finish(model, count)
