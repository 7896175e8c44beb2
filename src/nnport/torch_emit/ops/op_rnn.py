"""Recurrent layers: LSTM, GRU, RNN.

When torch's own layer computes exactly what the node asks for (constant weights, default
activations, no clip, no peepholes, no coupled input/forget gate, GRU ``linear_before_reset=1``,
no per-batch sequence lengths) the node becomes an ``nn.LSTM``/``nn.GRU``/``nn.RNN`` submodule,
its weights reordered from ONNX's gate order (LSTM i,o,f,c; GRU z,r,h) to torch's (i,f,g,o;
r,z,n).  Everything else runs through the ``_rnn_run`` helper, a plain loop over time steps that
implements the spec (see helpers/h_rnn.py).
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..emitter import Arg, Ctx, register

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
# ONNX gate index for each of torch's gates, in torch order
_TORCH_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
# activation -> (default alpha or None when it takes none, default beta or None)
_ACT_PARAMS = {
    "relu": (None, None), "tanh": (None, None), "sigmoid": (None, None),
    "softsign": (None, None), "softplus": (None, None),
    "affine": (1.0, 0.0), "leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
    "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None),
}


def _activations(ctx: Ctx, kind: str, n_dir: int, activations, alphas, betas):
    """[(name, alpha, beta)] for every activation of every direction, alphas/betas taken in
    order by the activations that use them (as onnxruntime does)."""
    per_dir = len(_DEFAULT_ACTS[kind])
    names = list(activations) if activations else _DEFAULT_ACTS[kind] * n_dir
    if len(names) == per_dir and n_dir == 2:
        names = names * 2
    if len(names) != per_dir * n_dir:
        ctx.fail(f"{len(names)} activations given, expected {per_dir * n_dir}")
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        key = name.lower()
        if key not in _ACT_PARAMS:
            ctx.fail(f"activation {name!r} is not supported")
        da, db = _ACT_PARAMS[key]
        a = b = 0.0
        if da is not None:
            a = float(alphas.pop(0)) if alphas else da
        if db is not None:
            b = float(betas.pop(0)) if betas else db
        out.append((name, a, b))
    return out


def _used(ctx: Ctx, i: int) -> bool:
    outs = ctx.node.outputs
    if i >= len(outs) or outs[i] is None:
        return False
    return bool(outs[i].uses()) or outs[i].is_graph_output()


def _reorder(arr: np.ndarray, kind: str, hidden: int) -> np.ndarray:
    return np.concatenate([arr[g * hidden:(g + 1) * hidden] for g in _TORCH_ORDER[kind]], 0)


def _torch_layer(ctx: Ctx, kind: str, X, W, R, B, seq, h0, c0, P, acts, clip, input_forget,
                 linear_before_reset, layout, direction) -> bool:
    """Emit an nn.LSTM/nn.GRU/nn.RNN call when that is exact; returns False otherwise."""
    w, r = ctx.const(W), ctx.const(R)
    b = ctx.const(B) if B is not None else None
    if w is None or r is None or (B is not None and b is None):
        return False
    dt = ctx.dtype(X) or ir.DataType.from_numpy(w.dtype)
    if dt not in (ir.DataType.FLOAT, ir.DataType.DOUBLE) or w.dtype != r.dtype \
            or ir.DataType.from_numpy(w.dtype) != dt:
        return False
    if clip is not None or input_forget or (kind == "GRU" and not linear_before_reset):
        return False
    if P is not None:
        p = ctx.const(P)
        if p is None or np.any(p != 0):
            return False
    names = [a[0].lower() for a in acts]
    nonlinearity = None
    if kind == "RNN":
        if len(set(names)) != 1 or names[0] not in ("tanh", "relu"):
            return False
        nonlinearity = names[0]
    else:
        default = [a.lower() for a in _DEFAULT_ACTS[kind]]
        if names != default * (len(names) // len(default)):
            return False
    time_axis = 1 if layout == 1 else 0
    if seq is not None:
        lens = ctx.const(seq)
        xs = ctx.shape(X)
        if lens is None or xs is None or xs[time_axis] is None or np.any(lens != xs[time_axis]):
            return False
    n_dir, hidden, in_size = w.shape[0], r.shape[-1], w.shape[-1]
    tensors = {}
    for d in range(n_dir):
        sfx = "_l0_reverse" if d == 1 else "_l0"
        tensors["weight_ih" + sfx] = _reorder(w[d], kind, hidden)
        tensors["weight_hh" + sfx] = _reorder(r[d], kind, hidden)
        if b is not None:
            wb, rb = np.split(b[d], 2)
            tensors["bias_ih" + sfx] = _reorder(wb, kind, hidden)
            tensors["bias_hh" + sfx] = _reorder(rb, kind, hidden)
    args = [str(in_size), str(hidden)]
    if nonlinearity == "relu":
        args.append("nonlinearity='relu'")
    if b is None:
        args.append("bias=False")
    if layout == 1:
        args.append("batch_first=True")
    if n_dir == 2:
        args.append("bidirectional=True")
    if dt == ir.DataType.DOUBLE:
        args.append("dtype=torch.float64")
    hint = ctx.module_hint(W)
    if hint.startswith("onnx::") or hint == W.value.name:
        # exporters name the node like "/encoder/lstm/LSTM": keep the module path
        parts = [p for p in (ctx.node.name or "").split("/") if p]
        if len(parts) > 1 and parts[-1].startswith(kind):
            parts.pop()
        hint = "_".join(parts) or kind.lower()
    mod = ctx.module(hint, f"nn.{kind}({', '.join(args)})", tensors)

    def state(s):
        if s is None:
            return None
        return f"{s}.transpose(0, 1).contiguous()" if layout == 1 else str(s)

    x = str(X)
    if direction == "reverse":
        x = f"torch.flip({X}, [{time_axis}])"
    # a constant all-zero initial state is nn.LSTM/GRU/RNN's default: left out, the module
    # makes it for any batch size (the exporter's constant has the export's batch)
    h0 = None if _zeros(ctx, h0) else h0
    c0 = None if _zeros(ctx, c0) else c0
    hs, cs = state(h0), state(c0)
    out, hn = ctx.tmp(f"{kind.lower()}_out"), ctx.tmp("h_n")
    if kind == "LSTM":
        cn = ctx.tmp("c_n")
        if hs is None and cs is None:
            ctx.line(f"{out}, ({hn}, {cn}) = {mod}({x})")
        else:
            hs = hs or f"torch.zeros_like({cs})"
            cs = cs or f"torch.zeros_like({hs})"
            ctx.line(f"{out}, ({hn}, {cn}) = {mod}({x}, ({hs}, {cs}))")
    else:
        cn = None
        ctx.line(f"{out}, {hn} = {mod}({x}{', ' + hs if hs else ''})")
    names = ctx.out_names
    if _used(ctx, 0):
        y = out
        if direction == "reverse":
            y = f"torch.flip({y}, [{time_axis}])"
        if n_dir == 1:
            y = f"{y}.unsqueeze({2 if layout == 1 else 1})"
        elif layout == 1:
            y = f"{y}.unflatten(2, (2, {hidden}))"
        else:
            y = f"{y}.unflatten(2, (2, {hidden})).transpose(1, 2)"
        ctx.line(f"{names[0]} = {y}")
    for i, s in ((1, hn), (2, cn)):
        if s is not None and _used(ctx, i):
            ctx.line(f"{names[i]} = {s}.transpose(0, 1)" if layout == 1 else f"{names[i]} = {s}")
    return True


def _zeros(ctx: Ctx, arg) -> bool:
    """A constant all-zero tensor, or one the graph makes from a constant zero (dynamo writes
    the zero initial state as Expand(0.0, [1, batch, hidden]); torch.export's LSTM refuses
    such a stride-0 state)."""
    if arg is None or arg.value is None:
        return False
    if ctx.is_const(arg):
        v = ctx.const(arg)
        return v is not None and v.size > 0 and not np.any(v)
    node = arg.value.producer()
    for _ in range(8):  # through ops that move values without changing them
        if node is None or node.domain not in ("", "ai.onnx") or not node.inputs or \
                node.op_type not in ("Identity", "Reshape", "Unsqueeze", "Squeeze",
                                     "Transpose", "Cast", "Slice", "Gather") or \
                node.inputs[0] is None:
            break
        if node.inputs[0].const_value is not None:
            src = node.inputs[0].const_value
            return src.size > 0 and not np.any(src.numpy())
        node = node.inputs[0].producer()
    if node is None or node.domain not in ("", "ai.onnx") or not node.inputs:
        return False
    if node.op_type == "Expand" and node.inputs[0] is not None:
        src = node.inputs[0].const_value
        return src is not None and src.size > 0 and not np.any(src.numpy())
    if node.op_type == "ConstantOfShape":
        attr = node.attributes.get("value")
        return attr is None or not np.any(attr.value.numpy())
    return False


def _recurrent(kind: str, ctx: Ctx, X, W, R, B, seq, h0, c0, P, *, activation_alpha,
               activation_beta, activations, clip, direction, hidden_size, input_forget,
               linear_before_reset, layout):
    if direction not in ("forward", "reverse", "bidirectional"):
        ctx.fail(f"unknown direction {direction!r}")
    n_dir = 2 if direction == "bidirectional" else 1
    acts = _activations(ctx, kind, n_dir, activations, activation_alpha, activation_beta)
    if _torch_layer(ctx, kind, X, W, R, B, seq, h0, c0, P, acts, clip, input_forget,
                    linear_before_reset, layout, direction):
        return None
    ctx.helper("_rnn_run")
    n_out = len(ctx.node.outputs)
    targets = [ctx.out_names[i] if _used(ctx, i) else "_" for i in range(min(n_out, 3))]
    targets += ["_"] * (3 - len(targets))
    opts = []
    if direction != "forward":
        opts.append(f"direction={direction!r}")
    if [a[0].lower() for a in acts] != [a.lower() for a in _DEFAULT_ACTS[kind]] * n_dir:
        opts.append("acts=[" + ", ".join(f"({n!r}, {ctx.lit(a)}, {ctx.lit(b)})"
                                         for n, a, b in acts) + "]")
    if clip is not None:
        opts.append(f"clip={ctx.lit(float(clip))}")
    if input_forget:
        opts.append("input_forget=True")
    if linear_before_reset:
        opts.append("linear_before_reset=True")
    if layout:
        opts.append(f"layout={int(layout)}")
    # trailing absent optional inputs are left out
    tensors = [X, W, R, B, seq, h0, c0, P]
    while tensors[-1] is None:
        tensors.pop()
    args = ", ".join(["None" if a is None else str(a) for a in tensors] + opts)
    ctx.line(f"{', '.join(targets)} = _rnn_run({kind!r}, {args})")
    return None


@register("LSTM", (1, 7, 14, 22))
def lstm(ctx: Ctx, X: Arg, W: Arg, R: Arg, B: Arg = None, sequence_lens: Arg = None,
         initial_h: Arg = None, initial_c: Arg = None, P: Arg = None, *, activation_alpha=None,
         activation_beta=None, activations=None, clip=None, direction="forward",
         hidden_size=None, input_forget=0, layout=0, output_sequence=0):
    return _recurrent("LSTM", ctx, X, W, R, B, sequence_lens, initial_h, initial_c, P,
                      activation_alpha=activation_alpha, activation_beta=activation_beta,
                      activations=activations, clip=clip, direction=direction,
                      hidden_size=hidden_size, input_forget=input_forget,
                      linear_before_reset=0, layout=layout)


@register("GRU", (1, 3, 7, 14, 22))
def gru(ctx: Ctx, X: Arg, W: Arg, R: Arg, B: Arg = None, sequence_lens: Arg = None,
        initial_h: Arg = None, *, activation_alpha=None, activation_beta=None,
        activations=None, clip=None, direction="forward", hidden_size=None,
        linear_before_reset=0, layout=0, output_sequence=0):
    return _recurrent("GRU", ctx, X, W, R, B, sequence_lens, initial_h, None, None,
                      activation_alpha=activation_alpha, activation_beta=activation_beta,
                      activations=activations, clip=clip, direction=direction,
                      hidden_size=hidden_size, input_forget=0,
                      linear_before_reset=linear_before_reset, layout=layout)


@register("RNN", (1, 7, 14, 22))
def rnn(ctx: Ctx, X: Arg, W: Arg, R: Arg, B: Arg = None, sequence_lens: Arg = None,
        initial_h: Arg = None, *, activation_alpha=None, activation_beta=None,
        activations=None, clip=None, direction="forward", hidden_size=None, layout=0,
        output_sequence=0):
    return _recurrent("RNN", ctx, X, W, R, B, sequence_lens, initial_h, None, None,
                      activation_alpha=activation_alpha, activation_beta=activation_beta,
                      activations=activations, clip=clip, direction=direction,
                      hidden_size=hidden_size, input_forget=0, linear_before_reset=0,
                      layout=layout)
