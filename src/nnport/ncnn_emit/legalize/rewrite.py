"""ONNX-level rewrites that bring a graph within ncnn's 4 dims (besides the batch) before
emission.  Each rewrite is exact (same values, fewer dims); the probe re-runs on the result.

- ``unbind``: Reshape(x, [.., 3, heads, d]) -> Transpose -> Split/Gather on axis 0 (the q/k/v
  split of attention, a rank-5 tensor whose batch axis moves) becomes, per piece, a Slice of
  x's last axis, a rank-4 Reshape and a Transpose.
- ``lower_transposes``: a Transpose of more than 4 dims (window partitions in Swin/MaxViT:
  rank 6) is done on merged axes: size-1 axes are dropped, axes that stay neighbours are
  merged, and where that still leaves more than 4 groups the permutation is split into two or
  three permutations of at most 4 groups each (``plan_permute``).
- ``collapse_reshapes``: Reshape(Reshape(x, A), B) -> Reshape(x, B), so the rank-6 shape
  between two of them never exists.  It runs once the lowered transposes' dead Reshapes are
  gone (a lowered Transpose reads its Reshape's input; two pixel_unshuffles or channel
  shuffles in a row leave a rank-6 ``lower_out`` whose only live reader is the next
  lowering's Reshape).
- ``select_first``: Gather(Reshape(y, S), i, axis a) with constant indices, where S has
  more than 4 dims (a channel shuffle written as a reshape to (2, N, C/2, H, W) and x[0],
  x[1]), becomes Reshape(y, (prod(S[:a]), S[a], prod(S[a+1:]))), the Gather on axis 1 of that
  rank-3 view of the same bytes, and a Reshape to the result's shape.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import common as ir_common

from ...irutil import replace_value

MAX = 4


# ---- permutation planning ------------------------------------------------------------------
def _groups(cur: tuple, target: tuple) -> list[tuple]:
    """Maximal runs of ``cur`` that appear in the same order, adjacent, in ``target``."""
    pos = {lab: i for i, lab in enumerate(target)}
    groups = [[cur[0]]]
    for lab in cur[1:]:
        if pos[lab] == pos[groups[-1][-1]] + 1:
            groups[-1].append(lab)
        else:
            groups.append([lab])
    return [tuple(g) for g in groups]


def _moves(cur: tuple):
    """Every state reachable from ``cur`` with one permutation of at most 4 contiguous groups."""
    n = len(cur)
    for k in range(2, min(MAX, n) + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = (0,) + cuts + (n,)
            groups = [cur[bounds[i]:bounds[i + 1]] for i in range(k)]
            for order in itertools.permutations(range(k)):
                if order == tuple(range(k)):
                    continue
                yield tuple(lab for g in order for lab in groups[g])


def plan_permute(perm: list[int]) -> list[tuple] | None:
    """States (label orders) from ``range(n)`` to ``perm``, each reachable from the previous one
    by permuting at most 4 groups of neighbouring axes; None when more than 3 steps are needed."""
    start, target = tuple(range(len(perm))), tuple(perm)
    if start == target:
        return []
    if len(_groups(start, target)) <= MAX:
        return [target]
    for s1 in _moves(start):
        if len(_groups(s1, target)) <= MAX:
            return [s1, target]
    for s1 in _moves(start):
        for s2 in _moves(s1):
            if len(_groups(s2, target)) <= MAX:
                return [s1, s2, target]
    return None


def permute_steps(sizes: list[int], perm: list[int]) -> list[tuple[list[int], list[int]]] | None:
    """[(merged input shape, permutation of the merged axes)] that transposes a tensor of
    ``sizes`` by ``perm``; size-1 axes are dropped (they do not change the data order)."""
    keep = [i for i, s in enumerate(sizes) if s != 1]
    relabel = {ax: j for j, ax in enumerate(keep)}
    sub = [relabel[p] for p in perm if p in relabel]
    plan = plan_permute(sub)
    if plan is None:
        return None
    ksizes = [sizes[i] for i in keep]
    steps, cur = [], tuple(range(len(sub)))
    for nxt in plan:
        groups = _groups(cur, nxt)
        shape = [int(np.prod([ksizes[lab] for lab in g])) for g in groups]
        first = {g[0]: i for i, g in enumerate(groups)}
        order, pos = [], 0
        while pos < len(nxt):
            gi = first[nxt[pos]]
            order.append(gi)
            pos += len(groups[gi])
        steps.append((shape, order))
        cur = nxt
    return steps


# ---- graph surgery -------------------------------------------------------------------------
class _Builder:
    """Adds nodes and constants, and records the facts the probe would have measured for them
    (each rewrite knows its outputs' shapes), so the graph need not run again."""

    def __init__(self, model: ir.Model, probe):
        self.graph = model.graph
        self.probe = probe
        self.n = 0
        self.names = {v.name for n in model.graph for v in n.outputs} | set(
            model.graph.initializers) | {v.name for v in model.graph.inputs}

    def _name(self, base: str) -> str:
        while True:
            self.n += 1
            name = f"{base}__nc{self.n}"
            if name not in self.names:
                self.names.add(name)
                return name

    def const(self, arr, base: str) -> ir.Value:
        arr = np.asarray(arr, dtype=np.int64)
        v = ir.Value(name=self._name(base + "_k"), const_value=ir.tensor(arr),
                     type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape(arr.shape))
        self.graph.register_initializer(v)
        self.probe.value[v.name] = arr
        self.probe.shape[v.name] = arr.shape
        self.probe.static.add(v.name)
        return v

    def node(self, before: ir.Node, op: str, inputs, attrs=None, base="t", *, shape,
             value=None, varies=None, shape_varies=None) -> ir.Value:
        n = ir.node(op, inputs, attrs or {}, name=self._name(before.name or base))
        out = n.outputs[0]
        out.name = self._name(base)
        self.graph.insert_before(before, n)
        self.probe.shape[out.name] = tuple(int(d) for d in shape)
        if value is not None:
            self.probe.value[out.name] = value
            self.probe.static.add(out.name)
            if varies is not None:
                self.probe.varies[out.name] = varies
        if shape_varies is not None:
            self.probe.shape_varies[out.name] = np.asarray(shape_varies, bool)
        return out


def _const(probe, v) -> np.ndarray | None:
    if v is None:
        return None
    if v.const_value is not None:  # also the shapes this pass added
        return v.const_value.numpy()
    return probe.value.get(v.name)


def _sole_use(v: ir.Value) -> ir.Node | None:
    uses = v.uses()
    if len(uses) != 1 or v.is_graph_output():
        return None
    return uses[0].node


def _ncnn_rank(shape) -> int:
    return len(shape) - (1 if len(shape) >= 2 and shape[0] == 1 else 0)


def _unbind(b: _Builder, probe, t: ir.Node) -> bool:
    r_node = t.inputs[0].producer()
    if r_node is None or r_node.op_type != "Reshape" or len(r_node.inputs) != 2 or \
            r_node.inputs[0] is None or _sole_use(r_node.outputs[0]) is not t:
        return False  # (a Reshape without its shape input is refused later, by name)
    x, S = r_node.inputs[0], r_node.inputs[1]
    rshape, xshape = probe.shape.get(r_node.outputs[0].name), probe.shape.get(x.name)
    if rshape is None or xshape is None or len(rshape) < 5 or t.attributes.get("perm") is None:
        return False
    perm = list(t.attributes["perm"].value)
    a = perm[0]
    s_val = _const(probe, S)
    if s_val is None or a == len(rshape) - 1 or int(np.prod(rshape[a:])) != xshape[-1]:
        return False
    if any(int(d) == 0 for d in s_val[a:]):
        return False  # a copied dim would shift position
    q = int(np.prod(rshape[a + 1:]))
    # pieces: (old value, index along the transpose's axis 0)
    pieces = []
    for use in list(t.outputs[0].uses()):
        c = use.node
        ax = c.attributes.get("axis")
        ax = ax.value if ax is not None else 0
        if c.op_type == "Gather" and ax == 0:
            idx = _const(probe, c.inputs[1])
            if idx is None or np.asarray(idx).ndim != 0:
                return False
            pieces.append((c.outputs[0], int(idx) % rshape[a], c))
        elif c.op_type == "Split" and ax == 0:
            for k, o in enumerate(c.outputs):
                if probe.shape.get(o.name, (0,))[0] != 1:
                    return False
                for u in list(o.uses()):
                    sq = u.node
                    axes = _const(probe, sq.inputs[1]) if len(sq.inputs) > 1 else None
                    if axes is None and sq.attributes.get("axes") is not None:
                        axes = np.asarray(sq.attributes["axes"].value)
                    if sq.op_type != "Squeeze" or axes is None or list(np.ravel(axes)) != [0]:
                        return False
                    pieces.append((sq.outputs[0], k, sq))
        else:
            return False
    if not pieces:
        return False
    keep_s = [i for i in range(len(rshape)) if i != a]
    perm2 = [p - (p > a) for p in perm[1:]]
    s_varies = probe.varies.get(S.name)
    x_sv = probe.shape_varies.get(x.name)
    r_sv = probe.shape_varies.get(r_node.outputs[0].name)
    piece_shape = tuple(xshape[:-1]) + (q,)
    kept_shape = tuple(rshape[i] for i in keep_s)
    kept_sv = None if r_sv is None else [bool(r_sv[i]) for i in keep_s]
    for old, k, anchor in pieces:
        sl = b.node(anchor, "Slice", [x, b.const([k * q], "start"), b.const([(k + 1) * q], "end"),
                                      b.const([-1], "axes")], base="unbind_slice",
                    shape=piece_shape,
                    shape_varies=None if x_sv is None else list(x_sv[:-1]) + [False])
        shp = b.node(anchor, "Gather", [S, b.const(keep_s, "keep")], {"axis": 0},
                     base="unbind_shape", shape=(len(keep_s),),
                     value=np.asarray(s_val)[keep_s],
                     varies=None if s_varies is None else np.asarray(s_varies)[keep_s])
        rs = b.node(anchor, "Reshape", [sl, shp], base="unbind_reshape", shape=kept_shape,
                    shape_varies=kept_sv)
        out = b.node(anchor, "Transpose", [rs], {"perm": perm2}, base="unbind_transpose",
                     shape=[kept_shape[p] for p in perm2],
                     shape_varies=None if kept_sv is None else [kept_sv[p] for p in perm2])
        replace_value(old, out)
    return True


def _lower_transpose(b: _Builder, probe, t: ir.Node) -> bool:
    x = t.inputs[0]
    xs, ys = probe.shape.get(x.name), probe.shape.get(t.outputs[0].name)
    if xs is None or ys is None or (_ncnn_rank(xs) <= MAX and _ncnn_rank(ys) <= MAX):
        return False
    src = x
    r_node = x.producer()
    if r_node is not None and r_node.op_type == "Reshape" and _sole_use(x) is t:
        src = r_node.inputs[0]  # read the reshape's input directly: the rank-5+ value goes away
    perm = list(t.attributes["perm"].value) if t.attributes.get("perm") is not None else \
        list(reversed(range(len(xs))))
    steps = permute_steps(list(xs), perm)
    if steps is None:
        return False
    cur = src
    for shape, order in steps:
        cur = b.node(t, "Reshape", [cur, b.const(shape, "merged")], base="lower_reshape",
                     shape=shape)
        cur = b.node(t, "Transpose", [cur], {"perm": order}, base="lower_transpose",
                     shape=[shape[o] for o in order])
    out = b.node(t, "Reshape", [cur, b.const(list(ys), "shape")], base="lower_out", shape=ys)
    replace_value(t.outputs[0], out)
    return True


def _collapse(b: _Builder, probe, r2: ir.Node) -> bool:
    mid = r2.inputs[0]
    r1 = mid.producer()
    if r1 is None or r1.op_type != "Reshape" or _sole_use(mid) is not r2:
        return False
    mid_shape = probe.shape.get(mid.name)
    if mid_shape is None:
        known = _const(probe, r1.inputs[1])
        mid_shape = tuple(int(d) for d in known) if known is not None else ()
    if _ncnn_rank(mid_shape) <= MAX:
        return False
    shp = _const(probe, r2.inputs[1])
    if shp is None or any(int(d) == 0 for d in np.ravel(shp)):
        return False
    r2.replace_input_with(0, r1.inputs[0])
    return True


def _select_first(b: _Builder, probe, g: ir.Node) -> bool:
    r_node = g.inputs[0].producer()
    if r_node is None or r_node.op_type != "Reshape" or r_node.domain not in ("", "ai.onnx") \
            or len(r_node.inputs) != 2 or r_node.inputs[0] is None:
        return False
    y, idx_v = r_node.inputs[0], g.inputs[1]
    rshape, gshape = probe.shape.get(r_node.outputs[0].name), probe.shape.get(g.outputs[0].name)
    idx = _const(probe, idx_v)
    if rshape is None or y.name not in probe.shape or gshape is None or idx is None or \
            g.outputs[0].name in probe.value or _ncnn_rank(rshape) <= MAX or \
            _ncnn_rank(gshape) > MAX or np.ndim(idx) > 1 or \
            np.any(probe.varies.get(idx_v.name, False)):
        return False
    a = int(g.attributes["axis"].value) if g.attributes.get("axis") is not None else 0
    a = a + len(rshape) if a < 0 else a
    if not 0 <= a < len(rshape):
        return False
    # the same bytes as (before, rshape[a], after): the gathered axis is the middle one
    view = [int(np.prod(rshape[:a])), int(rshape[a]), int(np.prod(rshape[a + 1:]))]
    v = b.node(g, "Reshape", [y, b.const(view, "view")], base="select_view", shape=view)
    picked = [view[0]] + list(np.shape(idx)) + [view[2]]
    sel = b.node(g, "Gather", [v, idx_v], {"axis": 1}, base="select_first", shape=picked)
    out = b.node(g, "Reshape", [sel, b.const(list(gshape), "shape")], base="select_first_out",
                 shape=gshape, shape_varies=probe.shape_varies.get(g.outputs[0].name))
    replace_value(g.outputs[0], out)
    return True


def _freeze_shapes(b: _Builder, probe, node: ir.Node) -> bool:
    """Shape/Size of a value with more than 4 dims becomes its (size-independent) value, so
    the rewrites below may remove that value."""
    x, y = node.inputs[0], node.outputs[0]
    if _ncnn_rank(probe.shape.get(x.name, ())) <= MAX or y.name not in probe.value:
        return False
    varies = probe.varies.get(y.name)
    if varies is not None and np.any(varies):
        return False
    replace_value(y, b.const(probe.value[y.name], "frozen"))
    return True


def run(model: ir.Model, probe) -> bool:
    """Apply the rewrites (``probe`` learns the new values' shapes); True when the graph
    changed."""
    b = _Builder(model, probe)
    changed = False
    for node in list(model.graph):
        if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx"):
            changed |= _freeze_shapes(b, probe, node)
    if changed:
        ir_common.RemoveUnusedNodesPass()(model)
    for node in list(model.graph):
        if node.op_type == "Transpose" and node.domain in ("", "ai.onnx"):
            changed |= _unbind(b, probe, node)
    for node in list(model.graph):
        if node.op_type == "Transpose" and node.domain in ("", "ai.onnx") and node.graph is not None:
            if node.outputs[0].uses() or node.outputs[0].is_graph_output():
                changed |= _lower_transpose(b, probe, node)
    if changed:  # a lowered Transpose reads past its Reshape: that one is dead, not a reader
        ir_common.RemoveUnusedNodesPass()(model)
    for node in list(model.graph):
        if node.op_type == "Reshape" and node.domain in ("", "ai.onnx") and node.graph is not None:
            changed |= _collapse(b, probe, node)
    for node in list(model.graph):
        if node.op_type == "Gather" and node.domain in ("", "ai.onnx") and node.graph is not None:
            changed |= _select_first(b, probe, node)
    if changed:
        ir_common.RemoveUnusedNodesPass()(model)
    return changed
