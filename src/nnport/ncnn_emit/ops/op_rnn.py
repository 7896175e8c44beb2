"""LSTM/GRU/RNN -> ncnn LSTM/GRU/RNN (sequence input as a 2-D blob: h = time, w = features).

ncnn params (operators.md): 0=num_output 1=weight_data_size 2=direction (0 forward 1 reverse
2 bidirectional).  Weights (all tagged): weight_xc (dirs, gates*H, I), bias_c (dirs, gates', H),
weight_hc (dirs, gates*H, H).  ncnn gate order: LSTM I F O G (ONNX i o f c); GRU R U N with bias
(R, U, WN, BN) (ONNX z r h, linear_before_reset=1).  Initial states: extra bottoms
``y0, hidden y1[, cell y2] = lstm(x0, hidden x1[, cell x2])`` read as (h = directions,
w = hidden); ncnn's LSTM takes both states or none, so a missing one is a zero MemoryData.
sequence_lens equal to the sequence length everywhere is the identity; shorter ones have no
ncnn equivalent.
"""
from __future__ import annotations

import numpy as np

from ..graph import Weight
from ..registry import register
from .common import attrs_of, reshape_params


def _rnn(ctx, node, kind):
    a = attrs_of(node)
    ins = list(node.inputs) + [None] * 8
    x, w, r, b = ins[0], ins[1], ins[2], ins[3]
    H = int(a["hidden_size"])
    W = np.asarray(ctx.need_const(w, "the RNN weight"), np.float32)
    R = np.asarray(ctx.need_const(r, "the RNN recurrence"), np.float32)
    D = W.shape[0]
    ngate = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    B = (np.asarray(ctx.need_const(b, "the RNN bias"), np.float32)
         if b is not None and b.name else np.zeros((D, 2 * ngate * H), np.float32))
    direction = a.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dcode = {"forward": 0, "reverse": 1, "bidirectional": 2}[direction]
    if ins[4] is not None and ins[4].name:
        lens = ctx.const(ins[4])
        T = ctx.shape(x)[1 if a.get("layout", 0) else 0]
        if lens is None or np.any(np.asarray(lens) != T):
            ctx.fail("sequence_lens shorter than the sequence is not supported by ncnn "
                     "(only a constant sequence_lens equal to the sequence length is)")
    states = []  # initial state blobs for the extra bottoms (hidden, then cell for LSTM)
    for i in ((5, 6) if kind == "LSTM" else (5,)):
        v = ins[i]
        if v is None or not v.name:
            states.append(None)
            continue
        c = ctx.const(v)
        if c is not None and not np.any(c):
            states.append(None)  # zeros: ncnn's default
            continue
        if tuple(ctx.shape(v)) != (D, 1, H):
            ctx.fail(f"initial state {v.name!r} must be (num_directions, batch=1, hidden)")
        st = ctx.g.unique(v.name + "_state0")
        # ncnn reads the state as (h = num_directions, w = hidden)
        ctx.add("Reshape", [ctx.blob(v)], [st], {0: H, 1: D})
        states.append(st)
    if kind == "LSTM" and any(st is not None for st in states):
        for j, i in enumerate((5, 6)):
            if states[j] is None:  # ncnn takes both states or neither
                st = ctx.g.unique(node.name + ("_h0" if i == 5 else "_c0"))
                ctx.add("MemoryData", [], [st], {0: H, 1: D},
                        [Weight(np.zeros((D, H), np.float32))])
                states[j] = st
    states = [st for st in states if st is not None]
    acts = [v.decode() if isinstance(v, bytes) else v for v in (a.get("activations") or [])]
    default = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
               "RNN": ["Tanh"]}[kind]
    if acts and [s.lower() for s in acts] != [s.lower() for s in default * D]:
        ctx.fail(f"{kind} activations {acts} are not ncnn's ({default})")
    if a.get("layout", 0) or a.get("clip") is not None or a.get("input_forget", 0):
        ctx.fail(f"{kind} layout=1/clip/input_forget are not mapped to ncnn")
    xs = ctx.shape(x)
    if len(xs) != 3 or xs[1] != 1:
        ctx.fail("RNN input must be (seq, batch=1, features)")
    Wb, Rb = B[:, :ngate * H], B[:, ngate * H:]
    if kind == "LSTM":
        order = [0, 2, 1, 3]
        g = lambda m: m.reshape(D, 4, H, -1)[:, order].reshape(D, 4 * H, -1)
        Wx, Wh = g(W), g(R)
        bias = (Wb + Rb).reshape(D, 4, H)[:, order]
    elif kind == "GRU":
        if not a.get("linear_before_reset", 0):
            ctx.fail("GRU with linear_before_reset=0 differs from ncnn's GRU")
        order = [1, 0, 2]
        g = lambda m: m.reshape(D, 3, H, -1)[:, order].reshape(D, 3 * H, -1)
        Wx, Wh = g(W), g(R)
        wb, rb = Wb.reshape(D, 3, H), Rb.reshape(D, 3, H)
        bias = np.stack([wb[:, 1] + rb[:, 1], wb[:, 0] + rb[:, 0], wb[:, 2], rb[:, 2]], 1)
    else:
        Wx, Wh, bias = W, R, (Wb + Rb).reshape(D, 1, H)
    seq = ctx.g.unique(x.name + "_seq")
    xdyn = ctx.probe.shape_varies.get(x.name)
    ctx.add("Reshape", [ctx.blob(x)], [seq],
            reshape_params(ctx, (xs[0], xs[2]), [bool(xdyn is not None and xdyn[0]), False]))
    outs = list(node.outputs) + [None, None]
    y, yh, yc = outs[0], outs[1], outs[2]
    tops = [ctx.g.unique((y.name if y is not None and y.name else node.name) + "_seq")]
    if states or (yh is not None and yh.name) or (yc is not None and yc.name):
        tops.append(ctx.g.unique((yh.name if yh is not None and yh.name else "h") + "_state"))
        if kind == "LSTM":
            tops.append(ctx.g.unique((yc.name if yc is not None and yc.name else "c") + "_state"))
    ctx.add(kind, [seq] + states, tops, {0: H, 1: int(Wx.size), 2: dcode},
            [Weight(Wx, True), Weight(np.ascontiguousarray(bias), True), Weight(Wh, True)])
    for top, v in zip(tops, [y, yh, yc]):
        if v is None or not v.name:
            continue
        dyn = ctx.probe.shape_varies.get(v.name)
        nd = None if dyn is None else (list(dyn[1:]) if ctx.drop(v) else list(dyn))
        ctx.add("Reshape", [top], [ctx.out(v)], reshape_params(ctx, ctx.nshape(v) or (1,), nd))


@register("LSTM", (7, 14, 22))  # 14: layout (refused when 1)
def lstm(ctx, node):
    _rnn(ctx, node, "LSTM")


@register("GRU", (7, 14, 22))
def gru(ctx, node):
    _rnn(ctx, node, "GRU")


@register("RNN", (7, 14, 22))
def rnn(ctx, node):
    _rnn(ctx, node, "RNN")
