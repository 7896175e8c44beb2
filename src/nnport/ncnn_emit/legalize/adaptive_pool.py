"""Adaptive pooling written out as gathers -> one ``nnport::AdaptivePool`` node (ncnn only).

torch's dynamo exporter writes ``F.adaptive_avg_pool1d/2d`` whose output size does not divide
the input size as a decomposition: Transpose -> GatherND (constant int64 indices, rank 5-6) ->
Transpose -> Where (constant mask, 0) -> Gather/Add trees or ReduceMean -> Div (constant
counts).  ncnn cannot hold the rank-6 gather, but its Pooling1D/Pooling/Pooling3D layers pool
adaptively (``op_pool.adaptive_pool``).

The region is recognized by what it computes, not by its node list.  From every GatherND with
constant indices and a run-time data input:

- the source ``x`` is the gather's data or a tensor a few single-input steps above it, of a
  static (N, C, L...) shape with 1 to 3 spatial dims;
- the output ``y`` is a value below the gather of shape (N, C, o...) with o <= L;
- the region is every node between them (descendants of ``x``, ancestors of ``y``); each of
  their other inputs must be a constant, and no tensor the region computes after leaving the
  source's layout chain (the nodes from ``x`` to the gather's data) may be read outside it or
  be a graph output, so the gather goes away with it.  The layout chain itself may be shared
  (two pools of one input share the exporter's Transpose): it stays while something reads it;
- the region, evaluated by onnx's reference evaluator on two random inputs, equals adaptive
  average pooling of ``x`` to ``y``'s spatial size with torch's bins
  (start = floor(i*L/o), end = ceil((i+1)*L/o)) within a tight tolerance.

Then ``y`` is computed by one ``nnport::AdaptivePool(x)`` node (attributes ``mode`` "avg",
``output_size``), and the region is dropped where nothing else reads it.  A matched
pair is grown by one step at each end while it still matches (the Unsqueeze/Squeeze around a
1-D pool: Pooling1D instead of a 2-D pool of height 1).  Anything else is left alone: the
region then converts as before or fails with the gather's own error, never to other numbers.

Max pooling is not claimed: neither torch exporter writes a non-dividing adaptive max pool
(both refuse it), and random inputs cannot reliably tell a max over a window with one
position too many from the true one (the extra value rarely is the largest), while any such
change moves an average.  The node and its emitter take ``mode`` "max" all the same.

The node exists only in the model the ncnn emitter builds its graph from (``build_graph``);
no ONNX file is written from that model.
"""
from __future__ import annotations

import heapq

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult
from onnx_ir.passes.common import RemoveUnusedNodesPass

from ...irutil import const_array, replace_value
from ...passes.match import DOMAIN, finish, is_op

OP = "AdaptivePool"
MAX_SOURCE_STEPS = 4  # how far above the gather the source may be
MAX_DOWN_NODES = 512  # how many nodes below the gather are looked at for the output
MAX_REGION = 4096  # nodes in one region
MAX_TRIES = 8  # regions evaluated per gather
MAX_ELEMENTS = 1 << 22  # a larger source is not evaluated (the region is left alone)
_GROW_STEPS = 2


class _Facts:
    """Constants and static shapes: the ncnn probe's when given, else the model's own."""

    def __init__(self, model: ir.Model, probe=None):
        self.model = model
        self.probe = probe

    def is_const(self, v) -> bool:
        """Known at conversion time (a weight is not read to say so)."""
        return v is not None and (v.const_value is not None or (
            self.probe is not None and bool(v.name) and v.name in self.probe.value))

    def const(self, v) -> np.ndarray | None:
        if not self.is_const(v):
            return None
        if v.const_value is not None:
            return const_array(v)
        return np.asarray(self.probe.value[v.name])

    def varies(self, v) -> bool:
        """The value or shape of ``v`` follows the input size (a dynamic model)."""
        if self.probe is None or not v.name:
            return False
        for table in (self.probe.varies, self.probe.shape_varies):
            m = table.get(v.name)
            if m is not None and np.any(m):
                return True
        return False

    def shape(self, v) -> tuple | None:
        if v is None:
            return None
        if self.probe is not None and v.name in self.probe.shape:
            return tuple(int(d) for d in self.probe.shape[v.name])
        if v.shape is not None and all(isinstance(d, int) for d in v.shape.dims):
            return tuple(int(d) for d in v.shape.dims)
        return None


def _runtime_inputs(facts: _Facts, node: ir.Node) -> list[ir.Value]:
    return [v for v in node.inputs if v is not None and v.name and not facts.is_const(v)]


def _plain(node: ir.Node) -> bool:
    """A standard op without subgraphs: the reference evaluator can run it alone."""
    return node.domain in ("", "ai.onnx") and not any(
        a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
        for a in node.attributes.values())


def _source_candidates(facts: _Facts, data: ir.Value) -> list[ir.Value]:
    """The gather's data and the values above it through nodes with one run-time input,
    nearest first."""
    out, cur = [data], data
    for _ in range(MAX_SOURCE_STEPS):
        p = cur.producer()
        if p is None or not _plain(p):
            break
        ins = _runtime_inputs(facts, p)
        if len(ins) != 1:
            break
        cur = ins[0]
        out.append(cur)
    return out


def _fits(xs: tuple | None, ys: tuple | None) -> bool:
    """``y`` can be an adaptive pool of ``x``: (N, C, o...) from (N, C, L...), 1 to 3 spatial
    dims, 1 <= o <= L."""
    if xs is None or ys is None or len(xs) != len(ys) or not 3 <= len(xs) <= 5:
        return False
    return xs[:2] == ys[:2] and all(1 <= o <= n for o, n in zip(ys[2:], xs[2:]))


def _below(facts: _Facts, gather: ir.Node, order: dict) -> list[ir.Value]:
    """Values computed below ``gather`` (its output included), in graph order."""
    heap = [(order[id(gather)], id(gather), gather)]
    seen, out = {id(gather)}, []
    while heap and len(seen) <= MAX_DOWN_NODES:
        _, _, n = heapq.heappop(heap)
        for o in n.outputs:
            if not o.name:
                continue
            out.append(o)
            for use in o.uses():
                c = use.node
                if id(c) not in seen and id(c) in order:
                    seen.add(id(c))
                    heapq.heappush(heap, (order[id(c)], id(c), c))
    return out


def _between(facts: _Facts, x: ir.Value, y: ir.Value, order: dict) -> list[ir.Node] | None:
    """Every node between ``x`` and ``y`` in graph order, or None when one of them has another
    run-time input (or is not one the reference evaluator runs)."""
    region, seen, stack = {}, set(), [y]
    while stack:
        v = stack.pop()
        if v is x or id(v) in seen or facts.is_const(v):
            continue
        seen.add(id(v))
        p = v.producer()
        if p is None or id(p) not in order:
            return None  # another graph input (or a value of an outer graph)
        if id(p) in region:
            continue
        if not _plain(p):
            return None
        region[id(p)] = p
        if len(region) > MAX_REGION:
            return None
        stack.extend(v2 for v2 in p.inputs if v2 is not None and v2.name)
    return sorted(region.values(), key=lambda n: order[id(n)])


def _layout_chain(gather: ir.Node, region: list[ir.Node]) -> set[int]:
    """Ids of the region's nodes above the gather's data input (the source's layout chain)."""
    ids = {id(n) for n in region}
    chain, stack = set(), [gather.inputs[0]]
    while stack:
        p = stack.pop().producer()
        if p is None or id(p) not in ids or id(p) in chain:
            continue
        chain.add(id(p))
        stack.extend(v for v in p.inputs if v is not None)
    return chain


def _self_contained(region: list[ir.Node], chain: set[int], y: ir.Value) -> bool:
    """No value the region computes outside the layout chain is read elsewhere."""
    ids = {id(n) for n in region}
    for n in region:
        if id(n) in chain:
            continue
        for o in n.outputs:
            if o is y:
                continue
            if o.is_graph_output() or any(id(u.node) not in ids for u in o.uses()):
                return False
    return True


# ---- the semantic test ----------------------------------------------------------------------
def bins(n: int, o: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows of ``o`` outputs over ``n`` inputs."""
    return [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)]


def reference_pool(x: np.ndarray, out: tuple, mode: str) -> np.ndarray:
    """Adaptive pooling of (N, C, L...) ``x`` to spatial size ``out`` (float64)."""
    x = np.asarray(x, np.float64)
    nsp = len(out)
    axes = tuple(range(2, 2 + nsp))
    res = np.empty(x.shape[:2] + tuple(out))
    windows = [bins(n, o) for n, o in zip(x.shape[2:], out)]
    for idx in np.ndindex(*out):
        win = x[(Ellipsis,) + tuple(slice(*windows[a][i]) for a, i in enumerate(idx))]
        res[(Ellipsis,) + idx] = win.mean(axis=axes) if mode == "avg" else win.max(axis=axes)
    return res


def _run_region(facts: _Facts, region: list[ir.Node], x: ir.Value, y: ir.Value,
                feeds: list[np.ndarray]) -> list[np.ndarray] | None:
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    made = {o.name for n in region for o in n.outputs if o.name}
    inits, seen = [], {x.name}
    for n in region:
        for v in n.inputs:
            if v is None or not v.name or v.name in made or v.name in seen:
                continue
            seen.add(v.name)
            arr = facts.const(v)
            if arr is None:
                return None
            inits.append(numpy_helper.from_array(np.asarray(arr), v.name))
    graph = helper.make_graph(
        [ir.serde.serialize_node(n) for n in region], "region",
        [helper.make_tensor_value_info(x.name, onnx.TensorProto.FLOAT, list(feeds[0].shape))],
        [helper.make_tensor_value_info(y.name, onnx.TensorProto.UNDEFINED, None)], inits)
    opsets = [helper.make_opsetid(d, v) for d, v in facts.model.opset_imports.items()
              if d in ("", "ai.onnx")]
    ev = ReferenceEvaluator(helper.make_model(graph, opset_imports=opsets))
    return [np.asarray(ev.run(None, {x.name: f})[0]) for f in feeds]


def pooling_mode(facts: _Facts, region: list[ir.Node], x: ir.Value, y: ir.Value,
                 xs: tuple, ys: tuple) -> str | None:
    """"avg" when the region computes that adaptive pooling of ``x``, else None."""
    rng = np.random.default_rng(20260722)
    # positive values (relative errors mean something) and values of both signs, all distinct
    feeds = [rng.uniform(0.5, 1.5, xs).astype(np.float32),
             rng.standard_normal(xs).astype(np.float32)]
    try:
        got = _run_region(facts, region, x, y, feeds)
    except Exception:
        return None
    if got is None or any(g.shape != ys for g in got):
        return None
    out = ys[2:]
    window = int(np.prod([max(e - s for s, e in bins(n, o)) for n, o in zip(xs[2:], out)]))
    tol = 1e-6 + 2e-7 * window  # float32 sums of ``window`` terms
    for mode in ("avg",):  # not "max": see the module's doc
        if all(np.allclose(g.astype(np.float64), reference_pool(f, out, mode), rtol=tol,
                           atol=tol * float(np.abs(f).max()))
               for g, f in zip(got, feeds)):
            return mode
    return None


# ---- the pass -------------------------------------------------------------------------------
def _try(facts: _Facts, gather: ir.Node, x: ir.Value, y: ir.Value, order: dict):
    """(region, mode) when the nodes between ``x`` and ``y`` are an adaptive pool; False when
    they were evaluated and are not; None when they are no region to evaluate."""
    xs, ys = facts.shape(x), facts.shape(y)
    if not _fits(xs, ys) or facts.varies(x) or int(np.prod(xs)) > MAX_ELEMENTS:
        return None
    if x.dtype not in (None, ir.DataType.FLOAT):
        return None
    region = _between(facts, x, y, order)
    if region is None or not any(n is gather for n in region):
        return None
    if not _self_contained(region, _layout_chain(gather, region), y):
        return None
    mode = pooling_mode(facts, region, x, y, xs, ys)
    return False if mode is None else (region, mode)


def _grow(facts: _Facts, gather: ir.Node, x: ir.Value, y: ir.Value, mode: str, order: dict):
    """The same pool one step wider at both ends (x's single-input producer's input, y's only
    reader's output) while that still matches."""
    for _ in range(_GROW_STEPS):
        p = x.producer()
        if p is None or not _plain(p) or len(_runtime_inputs(facts, p)) != 1:
            break
        uses = y.uses()
        if len(uses) != 1 or y.is_graph_output():
            break
        c = uses[0].node
        if not _plain(c) or len(c.outputs) != 1 or _runtime_inputs(facts, c) != [y]:
            break
        x2, y2 = _runtime_inputs(facts, p)[0], c.outputs[0]
        m = _try(facts, gather, x2, y2, order)
        if not m or m[1] != mode:
            break
        x, y = x2, y2
    return x, y


def _match(facts: _Facts, gather: ir.Node, order: dict):
    """(x, y, mode) of the adaptive pool ``gather`` belongs to, or None."""
    sources = [s for s in _source_candidates(facts, gather.inputs[0]) if facts.shape(s)]
    tries = 0
    for y in _below(facts, gather, order):
        ys = facts.shape(y)
        for x in sources:
            if not _fits(facts.shape(x), ys) or facts.is_const(y):
                continue
            m = _try(facts, gather, x, y, order)
            if m:
                x, y = _grow(facts, gather, x, y, m[1], order)
                return x, y, m[1]
            tries += m is False
            if tries >= MAX_TRIES:
                return None
    return None


def fuse_adaptive_pools(model: ir.Model, *, probe=None) -> PassResult:
    """Replace every gather-built adaptive pool of the main graph by one
    ``nnport::AdaptivePool`` node.  ``probe``: the ncnn probe (constants and shapes it
    computed); without it the model's own constants and static shapes are used."""
    facts = _Facts(model, probe)
    graph = model.graph
    count = 0
    for node in list(graph):
        if node.graph is None or not is_op(node, "GatherND") or len(node.inputs) != 2:
            continue
        data, idx = node.inputs
        if data is None or facts.is_const(data) or not facts.is_const(idx) or \
                facts.varies(idx):
            continue
        order = {id(n): i for i, n in enumerate(graph)}
        try:
            m = _match(facts, node, order)
        except Exception:  # a graph this search did not foresee: left as it is, as if no match
            m = None
        if m is None:
            continue
        x, y, mode = m
        substitute(model, OP, x, y, [ir.AttrString("mode", mode),
                                     ir.AttrInt64s("output_size", list(facts.shape(y)[2:]))],
                   (node.name or "gather") + "_adaptive_pool")
        count += 1
    return finish(model, count)


def substitute(model: ir.Model, op: str, x: ir.Value, y: ir.Value, attributes: list,
               name: str) -> None:
    """``y`` computed by one new ``nnport::<op>(x)`` node, put before y's producer; the nodes
    it replaces are dropped where nothing else reads them (shared with ``unfold.py``)."""
    last = y.producer()
    fused = ir.Node(DOMAIN, op, [x], attributes=attributes, name=name)
    fused.metadata_props.update(last.metadata_props)  # the module it came from
    model.graph.insert_before(last, fused)
    new = fused.outputs[0]
    new.shape, new.type = y.shape, y.type
    replace_value(y, new, keep_name=True)
    RemoveUnusedNodesPass()(model)
