"""Fold a constant per-channel Mul into the weights of the MatMul / Gemm / Conv that feeds it.

    y = (x @ W + b) * s        ->  y = x @ (W * s) + b * s
    y = Conv(x, W, b) * s      ->  y = Conv(x, W * s[:, None, ...], b * s)

where ``s`` is constant and varies only along the output-feature axis of the producer (N of a
MatMul / Gemm, the channel axis of a Conv) or is a scalar.  Between the producer and the Mul
there may be Adds of constants that also vary only along that axis (biases, scaled too) and
Transposes (the axis is followed through the permutation).  This is the layer-scale of ConvNeXt
and friends (``x.permute(0, 3, 1, 2) * gamma.reshape(1, -1, 1, 1)`` after the MLP's second
Linear): one element-wise pass over the activations less per block.

The new weights are new initializers (the old ones stay for their other users, if any; unused
ones are dropped with the dead nodes).  Only the tensors of a matched pattern are read, so the
lazily loaded (external) weights of the rest of the model stay on disk.  A new weight is not
kept in memory either: it is an ``ir.LazyTensor`` that multiplies again each time it is read
(the product is checked once, here), and a weight in the file is read on its own each time, so a folded model holds neither the products nor a mapping of the file; its targets
read the weights one at a time (issue 20: a model whose every weight folded held the file and a
second copy of its weights through the whole conversion).  Products are computed
exactly in a wider type (float32 for float16/bfloat16, float64 for float32; float64 weights in
float64) and rounded once to the weight's dtype, i.e. the value of multiplying in that dtype,
correctly rounded.  A fold that would overflow or flush a weight to zero / a subnormal (e.g. a
1e-6 layer-scale in float16) is not done: the Mul stays.

The values whose meaning changes (the producer's output and the intermediate ones) are renamed
(``..._scaled``), so tools comparing tensors by name with the original model (verify --locate)
never compare a scaled tensor with an unscaled one; the last value takes over the Mul's output
name.  The result differs from the original only by float rounding.
"""
from __future__ import annotations

import re

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import PassResult

from ...io import SharedExternalTensor
from ...irutil import replace_value

_FLOATS = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE}
_SUFFIX = re.compile(r"(?<=.)([._](weight|bias)|_output_\d+|:\d+)$")
_WIDER = {ir.DataType.FLOAT16: np.float32, ir.DataType.BFLOAT16: np.float32,
          ir.DataType.FLOAT: np.float64, ir.DataType.DOUBLE: np.float64}


def _is(node: ir.Node | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def _single_use(value: ir.Value, node: ir.Node) -> bool:
    """``value`` feeds ``node`` once and nothing else, and is not a graph output."""
    uses = list(value.uses())
    return len(uses) == 1 and uses[0][0] is node and not value.is_graph_output()


def _const(value: ir.Value | None, dtype: ir.DataType) -> bool:
    return (value is not None and value.const_value is not None
            and value.const_value.dtype == dtype and not value.is_graph_input())


def _shape(value: ir.Value) -> tuple[int, ...]:
    return tuple(int(d) for d in value.const_value.shape.numpy())


def _along(shape: tuple[int, ...], k: int, n: int) -> bool:
    """A constant of ``shape`` varies at most along the axis ``k`` places from the right (where
    it has size ``n``); broadcasting is right-aligned, so that axis is the same in the value it
    is combined with whatever the ranks."""
    return all(d == 1 or (i == k and d == n) for i, d in enumerate(reversed(shape)))


def _perm(node: ir.Node, rank: int) -> list[int] | None:
    perm = (list(node.attributes["perm"].value) if "perm" in node.attributes
            else list(range(rank))[::-1])
    return perm if sorted(perm) == list(range(rank)) else None


def _rank(value: ir.Value) -> int | None:
    return None if value.shape is None else len(value.shape)


def _producer(base: ir.Node, dtype: ir.DataType):
    """(rank or None, least rank, k, n, weight axis from the right, bias input or None) when
    ``base`` is a MatMul / Gemm / Conv by a constant weight (input 1) of ``dtype``; its output
    features (n of them) lie on the axis ``k`` places from the right."""
    if len(base.outputs) != 1 or len(base.inputs) < 2 or base.inputs[0] is None:
        return None
    x, w = base.inputs[0], base.inputs[1]
    if x.const_value is not None or not _const(w, dtype):
        return None
    wshape = _shape(w)
    if _is(base, "MatMul"):
        if len(wshape) < 2:
            return None
        rx = _rank(x)
        if rx is not None and rx < 2:  # a vector times a matrix: the output loses an axis
            return None
        rank = max(rx, len(wshape)) if rx is not None else _rank(base.outputs[0])
        return rank, (1 if rank is None else rank), 0, wshape[-1], 0, None
    if _is(base, "Gemm"):
        if len(wshape) != 2:
            return None
        tb = base.attributes["transB"].value if "transB" in base.attributes else 0
        bias = None
        if len(base.inputs) > 2 and base.inputs[2] is not None:
            if not _const(base.inputs[2], dtype) or len(_shape(base.inputs[2])) > 2:
                return None
            bias = 2
        return 2, 2, 0, (wshape[0] if tb else wshape[1]), (1 if tb else 0), bias
    if _is(base, "Conv"):
        if len(wshape) < 3:
            return None
        bias = None
        if len(base.inputs) > 2 and base.inputs[2] is not None:
            if not _const(base.inputs[2], dtype) or len(_shape(base.inputs[2])) != 1:
                return None
            bias = 2
        return len(wshape), len(wshape), len(wshape) - 2, wshape[0], len(wshape) - 1, bias
    return None


def _match(mul: ir.Node):
    """(producer, weight axis from the right, bias input or None, [(node, const input, k)] of
    the Adds on the way, scale value) when the constant Mul ``mul`` can be folded into the
    weights of its producer, else None."""
    if not _is(mul, "Mul") or len(mul.inputs) != 2 or len(mul.outputs) != 1:
        return None
    a, b = mul.inputs
    if a is None or b is None:
        return None
    if b.const_value is not None and a.const_value is None:
        y, s = a, b
    elif a.const_value is not None and b.const_value is None:
        y, s = b, a
    else:
        return None
    dtype = s.const_value.dtype
    if dtype not in _FLOATS or s.is_graph_input():
        return None
    chain: list[tuple[ir.Node, int | None]] = []  # from the Mul back: (node, const input)
    v, user = y, mul
    while True:
        if not _single_use(v, user):
            return None
        node = v.producer()
        if node is None or node.graph is not mul.graph or len(node.outputs) != 1:
            return None
        if _is(node, "Transpose") and len(node.inputs) == 1 and node.inputs[0] is not None:
            chain.append((node, None))
            v, user = node.inputs[0], node
        elif _is(node, "Add") and len(node.inputs) == 2 and None not in node.inputs:
            p, q = node.inputs
            if _const(q, dtype) and p.const_value is None:
                chain.append((node, 1))
                v, user = p, node
            elif _const(p, dtype) and q.const_value is None:
                chain.append((node, 0))
                v, user = q, node
            else:
                return None
        else:
            break
    base = node
    prod = _producer(base, dtype)
    if prod is None:
        return None
    rank, least, k, n, waxis, bias = prod
    consts = []
    for link, ci in reversed(chain):  # follow the feature axis from the producer to the Mul
        if ci is None:  # Transpose
            r = len(link.attributes["perm"].value) if "perm" in link.attributes else rank
            if r is None or (rank is not None and rank != r) or r < least:
                return None
            perm = _perm(link, r)
            if perm is None:
                return None
            pos = perm.index(r - 1 - k)
            k, rank, least = r - 1 - pos, r, r
        else:
            c = _shape(link.inputs[ci])
            if not _along(c, k, n):
                return None
            consts.append((link, ci, k))
            rank = None if rank is None else max(rank, len(c))
            least = max(least, len(c))
        known = _rank(link.outputs[0])
        if known is not None:
            if known < least or (rank is not None and known != rank):
                return None
            rank = least = known
    sshape = _shape(s)
    # the Mul goes away, so it must not grow its input: s at most as many axes as y
    if not _along(sshape, k, n) or len(sshape) > (rank if rank is not None else least):
        return None
    return base, waxis, bias, consts, s


def _scaled(arr: np.ndarray, scale: np.ndarray, axis_from_end: int, wide) -> np.ndarray | None:
    """``arr * scale`` with ``scale`` (length 1 or n) laid along the axis ``axis_from_end`` axes
    from the right (``arr`` gets leading unit axes when it has fewer), rounded once to
    ``arr``'s dtype; None when that would overflow or lose a value to zero / subnormals.
    Computed in slices of the first axis: the wide temporaries (several times a slice) stay
    small next to a large weight."""
    if arr.ndim <= axis_from_end:
        arr = arr.reshape((1,) * (axis_from_end + 1 - arr.ndim) + arr.shape)
    shape = [1] * arr.ndim
    shape[arr.ndim - 1 - axis_from_end] = scale.size
    s = scale.astype(wide).reshape(shape)
    arr = np.broadcast_to(arr, np.broadcast_shapes(arr.shape, s.shape))  # a bias may grow
    try:
        tiny = float(np.finfo(arr.dtype).tiny)
    except ValueError:  # bfloat16 (ml_dtypes)
        import ml_dtypes

        tiny = float(ml_dtypes.finfo(arr.dtype).tiny)
    out = np.empty(arr.shape, arr.dtype)
    row = arr[:1].nbytes or 1
    step = max(1, _SLICE_BYTES // row)
    for i in range(0, arr.shape[0], step):
        a = arr[i:i + step].astype(wide)
        exact = a * (s[i:i + step] if s.shape[0] > 1 else s)
        part = exact.astype(arr.dtype)
        back = np.abs(part.astype(wide))
        lost = (exact != 0) & (back < tiny) & (np.abs(a) >= tiny)
        if np.any(lost) or np.any(np.isinf(back) & np.isfinite(exact) & np.isfinite(a)):
            return None
        if np.any(np.isinf(part) & ~np.isinf(a)):
            return None
        out[i:i + step] = part
    return out


_SLICE_BYTES = 4 << 20


def _read(t: ir.TensorProtocol) -> np.ndarray:
    """``t``'s value; a weight in a file is read on its own (``SharedExternalTensor.read``),
    not through a mapping of the whole file."""
    return t.read() if isinstance(t, SharedExternalTensor) else t.numpy()


def _lazy_scaled(src: ir.TensorProtocol, scale: np.ndarray, axis_from_end: int, wide,
                 shape: tuple[int, ...]) -> ir.LazyTensor:
    """``src`` times ``scale`` (``_scaled``), computed whenever it is read, never held."""
    dtype = src.dtype

    def compute() -> ir.Tensor:
        out = _scaled(_read(src), scale, axis_from_end, wide)
        assert out is not None  # the same product passed _scaled's checks when folded
        return ir.Tensor(out, dtype=dtype)

    return ir.LazyTensor(compute, dtype, ir.Shape(shape))


class _Names:
    def __init__(self, graph: ir.Graph):
        self.used = set(graph.initializers)
        for v in graph.inputs:
            self.used.add(v.name)
        for node in graph:
            self.used.update(o.name for o in node.outputs if o.name)

    def fresh(self, name: str | None, default: str) -> str:
        """``name`` with ``_scaled`` inserted before a ``.weight`` / ``.bias`` / ``_output_0``
        suffix (the Linear the torch emitter names after the bias reads ``..._scaled``), made
        unique."""
        m = _SUFFIX.search(name or "")
        base, suffix = ((name or default), "") if m is None else (name[: m.start()], m.group())
        cand, i = f"{base}_scaled{suffix}", 1
        while cand in self.used:
            cand, i = f"{base}_scaled{i}{suffix}", i + 1
        self.used.add(cand)
        return cand


def _set_const(graph: ir.Graph, names: _Names, node: ir.Node, index: int,
               tensor: ir.LazyTensor) -> None:
    old = node.inputs[index]
    name = names.fresh(old.name, "folded")
    tensor.name = name
    val = ir.Value(name=name, const_value=tensor)
    val.shape = ir.Shape(tensor.shape.numpy())
    val.type = ir.TensorType(old.const_value.dtype)
    graph.register_initializer(val)
    node.replace_input_with(index, val)


def _fold_one(graph: ir.Graph, names: _Names, mul: ir.Node) -> bool:
    m = _match(mul)
    if m is None:
        return False
    base, waxis, bias, consts, s = m
    try:
        scale = np.array(_read(s.const_value)).reshape(-1)  # a copy: not a view of the file
    except Exception:
        return False
    wide = _WIDER[s.const_value.dtype]
    # (node, input index, axis counted from the right) of every constant to scale
    todo = [(base, 1, waxis)] + ([(base, bias, 0)] if bias is not None else []) + consts
    new = []
    for node, ci, k in todo:  # check everything first: a refused fold changes nothing
        src = node.inputs[ci].const_value
        try:
            arr = _read(src)
        except Exception:
            return False
        out = _scaled(arr, scale, k, wide)
        if out is None:
            return False
        new.append((node, ci, _lazy_scaled(src, scale, k, wide, out.shape)))
        del arr, out  # checked; the product is computed again when read
    for node, ci, tensor in new:
        _set_const(graph, names, node, ci, tensor)
    # the values that now hold scaled data get new names; the last takes over the Mul's output
    values = [base.outputs[0]] + [link.outputs[0] for link in _chain_nodes(base, mul)]
    for v in values[:-1]:
        v.name = names.fresh(v.name, "folded")
    last, out = values[-1], mul.outputs[0]
    if out.shape is not None:
        last.shape = out.shape
    if out.type is not None:
        last.type = out.type
    replace_value(out, last, keep_name=True)
    graph.remove(mul, safe=True)
    return True


def _chain_nodes(base: ir.Node, mul: ir.Node) -> list[ir.Node]:
    """The single-use nodes from ``base`` (excluded) to ``mul`` (excluded)."""
    out, node = [], base
    while True:
        (user, _), = node.outputs[0].uses()
        if user is mul:
            return out
        out.append(user)
        node = user


def fold_scale(model: ir.Model) -> PassResult:
    """Fold every constant feature-wise Mul of the main graph (each one folded is removed)."""
    graph = model.graph
    names = _Names(graph)
    count = 0
    for node in list(graph):
        if _is(node, "Mul") and node.graph is graph:
            count += _fold_one(graph, names, node)
    return PassResult(model, count > 0)
