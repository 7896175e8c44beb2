"""Keras GRU layers that tf2onnx exports as a Loop become one ONNX GRU node.

tf2onnx 1.17 turns a Keras 3 LSTM into an ONNX LSTM already, but leaves a Keras GRU
(``reset_after=True``, the Keras default) as the TensorFlow while-loop.  The loop body computes,
per time step t (x_t = X[t], X time-major, gates in Keras order z, r, h)::

    xz, xr, xh = split(x_t @ W + b_x)             rz, rr, rh = slices of (h @ U + b_h)
    z = sigmoid(xz + rz);  r = sigmoid(xr + rr);  hh = tanh(xh + r * rh)
    h' = z * h + (1 - z) * hh

which is ONNX GRU with ``linear_before_reset=1`` (gate order z, r, h is the same in both), so the
emitters turn it into ``nn.GRU``.  The match is structural and strict: anything else (other
activations, ``reset_after=False``, masking, extra loop outputs in use) is left as it is.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...irutil import const_array as const, replace_value
from .common import attr, is_op, new_const


def _skip_identity(v: ir.Value) -> ir.Value:
    while v is not None and is_op(v.producer(), "Identity"):
        v = v.producer().inputs[0]
    return v


def _operands(node: ir.Node | None, op: str):
    if not is_op(node, op) or len(node.inputs) != 2:
        return None
    return [_skip_identity(v) for v in node.inputs]


class _Body:
    def __init__(self, loop: ir.Node):
        self.loop = loop
        self.g = loop.attributes["body"].value
        self.inputs = list(self.g.inputs)
        self.outputs = list(self.g.outputs)

    def value(self, v: ir.Value):
        """Numpy value of a body value computed from constants only (passthrough loop inputs,
        Identity, Squeeze, Split, Unsqueeze), else None."""
        v = _skip_identity(v)
        c = const(v)
        if c is not None:
            return c
        if v in self.inputs:
            k = self.inputs.index(v)
            if k >= 2 and _skip_identity(self.outputs[k - 1]) is v:
                return const(self.loop.inputs[k])
            return None
        node = v.producer()
        if node is None or node.graph is not self.g:
            return None
        x = self.value(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
        if x is None:
            return None
        if is_op(node, "Squeeze", "Unsqueeze"):
            axes = const(node.inputs[1]) if len(node.inputs) > 1 else attr(node, "axes")
            if axes is None:
                return None
            axes = tuple(int(a) for a in np.asarray(axes).reshape(-1))
            return np.squeeze(x, axes) if node.op_type == "Squeeze" else np.expand_dims(x, axes)
        if is_op(node, "Split"):
            if len(node.inputs) > 1 and node.inputs[1] is not None:
                sizes = const(node.inputs[1])
                if sizes is None:
                    return None
                idx = np.cumsum(sizes)[:-1]
            else:
                idx = len(node.outputs)
            parts = np.split(x, idx, axis=int(attr(node, "axis", 0)))
            return parts[list(node.outputs).index(v)]
        return None


def _match_gru(loop: ir.Node):
    body = _Body(loop)
    n_carried = len(loop.inputs) - 2
    scans = body.outputs[1 + n_carried:]
    if len(scans) != 1 or n_carried < 1:
        return None
    h_new = _skip_identity(scans[0])
    carried_h = [j for j in range(n_carried) if _skip_identity(body.outputs[1 + j]) is h_new]
    if len(carried_h) != 1:
        return None
    j = carried_h[0]
    h_prev = body.inputs[2 + j]
    # h' = z * h + (1 - z) * hh
    ops = _operands(h_new.producer(), "Add")
    if ops is None:
        return None
    z = hh = None
    for a, b in (ops, ops[::-1]):
        m1, m2 = _operands(a.producer(), "Mul"), _operands(b.producer(), "Mul")
        if m1 is None or m2 is None or h_prev not in m1:
            continue
        zc = m1[1 - m1.index(h_prev)]
        for s, t in (m2, m2[::-1]):
            sub = _operands(s.producer(), "Sub")
            if sub is not None and sub[1] is zc:
                one = body.value(sub[0])
                if one is not None and np.all(one == 1):
                    z, hh = zc, t
    if z is None or not is_op(z.producer(), "Sigmoid") or not is_op(hh.producer(), "Tanh"):
        return None
    za = _operands(_skip_identity(z.producer().inputs[0]).producer(), "Add")
    ha = _operands(_skip_identity(hh.producer().inputs[0]).producer(), "Add")
    if za is None or ha is None:
        return None
    # hh = tanh(xh + r * rh)
    xh = rh = r = None
    for a, b in (ha, ha[::-1]):
        m = _operands(b.producer(), "Mul")
        if m is None:
            continue
        for p, q in (m, m[::-1]):
            if is_op(p.producer(), "Sigmoid"):
                xh, r, rh = a, p, q
    if r is None:
        return None
    ra = _operands(_skip_identity(r.producer().inputs[0]).producer(), "Add")
    if ra is None:
        return None
    # the input side: outputs 0, 1, 2 of one Split of x_t @ W (+ b_x)
    def input_gate(pair, gate):
        for a, b in (pair, pair[::-1]):
            s = a.producer()
            if is_op(s, "Split") and len(s.outputs) == 3 and list(s.outputs).index(a) == gate:
                return a, b
        return None

    gz, gr = input_gate(za, 0), input_gate(ra, 1)
    if gz is None or gr is None:
        return None
    split = xh.producer()
    if not is_op(split, "Split") or list(split.outputs).index(xh) != 2 or \
            gz[0].producer() is not split or gr[0].producer() is not split:
        return None
    rz, rr = gz[1], gr[1]
    if int(attr(split, "axis", 0)) not in (-1, 1) or (
            len(split.inputs) > 1 and split.inputs[1] is not None
            and len(set(np.asarray(body.value(split.inputs[1]) if body.value(split.inputs[1])
                                   is not None else [0, 1]).tolist())) != 1):
        return None
    xw = _skip_identity(split.inputs[0])
    add = _operands(xw.producer(), "Add")
    b_x = None
    if add is not None:
        for a, b in (add, add[::-1]):
            if is_op(a.producer(), "MatMul") and body.value(b) is not None:
                xw, b_x = a, body.value(b)
                break
    mm = _operands(xw.producer(), "MatMul")
    if mm is None:
        return None
    x_t, w = mm[0], body.value(mm[1])
    gather = x_t.producer()
    if w is None or w.ndim != 2 or not is_op(gather, "Gather") or attr(gather, "axis", 0) != 0:
        return None
    seq = gather.inputs[0]
    if seq.producer() is not None and seq.producer().graph is body.g or seq in body.inputs:
        return None  # the sequence must come from outside the loop
    if _skip_identity(gather.inputs[1]) is not body.inputs[0] and not _is_counter(
            body, loop, _skip_identity(gather.inputs[1])):
        return None
    hidden = w.shape[1] // 3
    if w.shape[1] != 3 * hidden:
        return None
    # the recurrent side: rz, rr, rh are thirds of h @ U (+ b_h), as Slices or one Split
    src = None
    for gate, v in enumerate((rz, rr, rh)):
        node = v.producer()
        if is_op(node, "Slice"):
            starts, ends = const(node.inputs[1]), const(node.inputs[2])
            axes = const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None \
                else None
            steps = const(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None \
                else None
            if starts is None or ends is None or (steps is not None and np.any(steps != 1)):
                return None
            starts, ends = starts.reshape(-1).tolist(), ends.reshape(-1).tolist()
            axes = axes.reshape(-1).tolist() if axes is not None else list(range(len(starts)))
            last = [(s, e) for s, e, ax in zip(starts, ends, axes) if ax in (-1, 1)]
            others = [(s, e) for s, e, ax in zip(starts, ends, axes) if ax not in (-1, 1)]
            if len(last) != 1 or any(s != 0 or e < 2**30 for s, e in others):
                return None
            s, e = last[0]
            if s != gate * hidden or min(e, 3 * hidden) != (gate + 1) * hidden:
                return None
        elif is_op(node, "Split") and len(node.outputs) == 3 and \
                list(node.outputs).index(v) == gate and int(attr(node, "axis", 0)) in (-1, 1):
            pass
        else:
            return None
        s_in = _skip_identity(node.inputs[0])
        if src is None:
            src = s_in
        elif s_in is not src:
            return None
    add = _operands(src.producer(), "Add")
    b_h, hu = None, src
    if add is not None:
        for a, b in (add, add[::-1]):
            if is_op(a.producer(), "MatMul") and body.value(b) is not None:
                hu, b_h = a, body.value(b)
                break
    mm = _operands(hu.producer(), "MatMul")
    if mm is None or mm[0] is not h_prev:
        return None
    u = body.value(mm[1])
    if u is None or u.shape != (hidden, 3 * hidden):
        return None
    zero = np.zeros(3 * hidden, dtype=w.dtype)
    b_x = zero if b_x is None else b_x
    b_h = zero if b_h is None else b_h
    if b_x.size != 3 * hidden or b_h.size != 3 * hidden:
        return None
    # the trip count must cover the whole sequence
    trip = const(loop.inputs[0]) if loop.inputs[0] is not None else None
    t_dim = seq.shape[0] if seq.shape is not None and len(seq.shape) == 3 else None
    if isinstance(t_dim, int) and (trip is None or int(trip) != t_dim):
        return None
    # only the final h and the stacked outputs may be used after the loop
    for k, out in enumerate(loop.outputs):
        if k not in (j, n_carried) and (out.uses() or out.is_graph_output()):
            return None
    return dict(seq=seq, h0=loop.inputs[2 + j], w=w, u=u, b_x=b_x.reshape(-1),
                b_h=b_h.reshape(-1), hidden=hidden, h_out=loop.outputs[j],
                y_out=loop.outputs[n_carried])


def _is_counter(body: _Body, loop: ir.Node, v: ir.Value) -> bool:
    """``v`` is a loop-carried value starting at 0 and incremented by 1 each iteration."""
    if v not in body.inputs or body.inputs.index(v) < 2:
        return False
    k = body.inputs.index(v)
    init = const(loop.inputs[k])
    nxt = _operands(_skip_identity(body.outputs[k - 1]).producer(), "Add")
    if init is None or np.any(init != 0) or nxt is None or v not in nxt:
        return False
    step = const(nxt[1 - nxt.index(v)])
    return step is not None and np.all(step == 1)


def _rewrite(graph: ir.Graph, loop: ir.Node, m: dict) -> None:
    name = loop.name or "gru"
    h = m["hidden"]
    w = m["w"].T.reshape(1, 3 * h, -1)
    r = m["u"].T.reshape(1, 3 * h, h)
    b = np.concatenate([m["b_x"], m["b_h"]]).reshape(1, 6 * h).astype(w.dtype)
    axes0 = new_const(graph, np.array([0], dtype=np.int64), f"{name}_axes0")
    axes1 = new_const(graph, np.array([1], dtype=np.int64), f"{name}_axes1")
    h0 = ir.Node("", "Unsqueeze", [m["h0"], axes0], name=f"{name}_h0", num_outputs=1)
    gru = ir.Node("", "GRU", [m["seq"], new_const(graph, w, f"{name}_W"),
                              new_const(graph, r, f"{name}_R"), new_const(graph, b, f"{name}_B"),
                              None, h0.outputs[0]],
                  attributes=[ir.AttrInt64("hidden_size", h),
                              ir.AttrInt64("linear_before_reset", 1)],
                  name=name, num_outputs=2)
    y = ir.Node("", "Squeeze", [gru.outputs[0], axes1], name=f"{name}_Y", num_outputs=1)
    yh = ir.Node("", "Squeeze", [gru.outputs[1], axes0], name=f"{name}_Y_h", num_outputs=1)
    graph.insert_before(loop, [h0, gru, y, yh])
    dt = ir.DataType.from_numpy(w.dtype)
    for out in (*gru.outputs, y.outputs[0], yh.outputs[0]):
        out.dtype = dt
    if m["h0"].dtype is not None:
        h0.outputs[0].dtype = m["h0"].dtype
    replace_value(m["y_out"], y.outputs[0])
    replace_value(m["h_out"], yh.outputs[0])
    for o in loop.outputs:
        if o.uses() or o.is_graph_output():
            return
    graph.remove(loop, safe=True)


def rewrite_keras_rnn(model: ir.Model) -> PassResult:
    """Replace every Keras GRU loop in the main graph."""
    graph = model.graph
    count = 0
    for node in list(graph):
        if is_op(node, "Loop") and node.graph is graph and "body" in node.attributes:
            m = _match_gru(node)
            if m is not None:
                _rewrite(graph, node, m)
                count += 1
    return PassResult(model, count > 0)
