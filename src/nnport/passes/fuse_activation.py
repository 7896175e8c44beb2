"""Activations exporters write out as element-wise chains -> one ``nnport`` node each, printed as
the ``F.`` call a person writes:

    x * sigmoid(x)                                   -> Silu        F.silu(x)
    x * tanh(softplus(x))                            -> Mish        F.mish(x)
    x * hardsigmoid(x, 1/6, 1/2)                     -> HardSwish   F.hardswish(x)
    x * clip(x + 3, 0, 6) / 6                        -> HardSwish
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))  -> Gelu(approximate='tanh')

Products match in any order and association (Mul trees, Div by a constant, ``Pow(x, 3)`` or
``x * x * x``).  Runs on the copy the torch emitter converts, like the other torch-only fusions.
"""
from __future__ import annotations

import math

import onnx_ir as ir

from .fuse_attention import DOMAIN, _FLOATS, _scalar, finish, replace_output
from .fuse_gelu import _close, _is, _other, _single_user


def _scalar_input(node: ir.Node, i: int) -> float | None:
    ins = list(node.inputs)
    return _scalar(ins[i]) if i < len(ins) else None


def product(value: ir.Value, stop: set[int] = frozenset()) -> tuple[list[ir.Value], float] | None:
    """``value`` as a product: (non-constant factors, constant factor).  Descends into Mul,
    Div by a scalar constant and Pow by a small integer, through values used only once (a value
    used elsewhere, or listed in ``stop``, is a factor)."""
    factors: list[ir.Value] = []
    const = 1.0

    def walk(v: ir.Value, root: bool) -> bool:
        nonlocal const
        s = _scalar(v)
        if s is not None:
            const *= s
            return True
        node = v.producer()
        inner = root or (id(v) not in stop and _single_user(v) is not None)
        if node is not None and inner and node.domain in ("", "ai.onnx"):
            ins = list(node.inputs)
            if node.op_type == "Mul" and len(ins) == 2 and None not in ins:
                return walk(ins[0], False) and walk(ins[1], False)
            if node.op_type == "Div" and len(ins) == 2 and ins[0] is not None:
                d = _scalar(ins[1])
                if d not in (None, 0.0):
                    const /= d
                    return walk(ins[0], False)
            if node.op_type == "Pow" and len(ins) == 2 and ins[0] is not None:
                e = _scalar(ins[1])
                if e in (2.0, 3.0):
                    return all(walk(ins[0], False) for _ in range(int(e)))
        if root:
            return False
        factors.append(v)
        return True

    if not walk(value, True):
        return None
    return factors, const


def _same(factors: list[ir.Value], want: list[ir.Value]) -> bool:
    return sorted(map(id, factors)) == sorted(map(id, want))


def climb_product(start: ir.Value, want: list[ir.Value], const: float,
                  steps: int = 4) -> ir.Node | None:
    """The Mul/Div node above ``start`` whose output is exactly ``prod(want) * const``
    (``start`` being one of ``want``); None when the chain of single users ends first."""
    v = start
    stop = {id(w) for w in want}
    for _ in range(steps):
        user = _single_user(v)
        if user is None or not (_is(user, "Mul") or _is(user, "Div")):
            return None
        got = product(user.outputs[0], stop)
        if got is not None and _same(got[0], want) and _close(got[1], const):
            return user
        v = user.outputs[0]
    return None


def _float(x: ir.Value | None) -> bool:
    return x is not None and x.dtype in _FLOATS and x.const_value is None


def _match_silu(sig: ir.Node):
    x = sig.inputs[0]
    mul = _single_user(sig.outputs[0])
    if _float(x) and _is(mul, "Mul") and _other(mul, sig.outputs[0]) is x:
        return "Silu", x, mul, {}
    return None


def _match_mish(sp: ir.Node):
    x = sp.inputs[0]
    th = _single_user(sp.outputs[0])
    if not (_float(x) and _is(th, "Tanh")):
        return None
    mul = _single_user(th.outputs[0])
    if _is(mul, "Mul") and _other(mul, th.outputs[0]) is x:
        return "Mish", x, mul, {}
    return None


def _match_hardsigmoid(hs: ir.Node):
    x = hs.inputs[0]
    a, b = hs.attributes.get("alpha"), hs.attributes.get("beta")
    alpha = 0.2 if a is None else a.as_float()
    beta = 0.5 if b is None else b.as_float()
    if not (_float(x) and _close(alpha, 1 / 6) and _close(beta, 0.5)):
        return None
    mul = _single_user(hs.outputs[0])
    if _is(mul, "Mul") and _other(mul, hs.outputs[0]) is x:
        return "HardSwish", x, mul, {}
    return None


def _clip_bounds(clip: ir.Node) -> tuple[float | None, float | None]:
    if clip.op_type == "Relu":
        return 0.0, math.inf
    lo, hi = clip.attributes.get("min"), clip.attributes.get("max")
    if lo is not None or hi is not None:  # opset < 11
        return (lo.as_float() if lo is not None else -math.inf,
                hi.as_float() if hi is not None else math.inf)
    ins = list(clip.inputs)
    lo = _scalar(ins[1]) if len(ins) > 1 and ins[1] is not None else -math.inf
    hi = _scalar(ins[2]) if len(ins) > 2 and ins[2] is not None else math.inf
    return lo, hi


def _match_hardswish_clip(clip: ir.Node):
    """x * clip(x + 3, 0, 6) / 6 (the relu6 spelling of MobileNetV3 / YOLOv5 exports)."""
    if _clip_bounds(clip) != (0.0, 6.0):
        return None
    add = clip.inputs[0].producer() if clip.inputs[0] is not None else None
    if not _is(add, "Add") or _single_user(clip.inputs[0]) is not clip:
        return None
    ins = list(add.inputs)
    x = next((v for v in ins if _scalar(v) is None), None)
    if not _float(x) or not _close(_scalar(_other(add, x)), 3.0):
        return None
    last = climb_product(clip.outputs[0], [x, clip.outputs[0]], 1 / 6)
    return ("HardSwish", x, last, {}) if last is not None else None


_SQRT_2_PI = math.sqrt(2 / math.pi)


def _match_gelu_tanh(th: ir.Node):
    inner = th.inputs[0]
    if inner is None:
        return None
    p = product(inner)
    if p is None or len(p[0]) != 1 or not _close(p[1], _SQRT_2_PI):
        return None
    add = p[0][0].producer()
    if not _is(add, "Add") or _single_user(p[0][0]) is None:
        return None
    a, b = add.inputs
    for x, cubic in ((a, b), (b, a)):
        if not _float(x) or cubic is None or _single_user(cubic) is None:
            continue
        q = product(cubic, {id(x)})
        if q is not None and _same(q[0], [x, x, x]) and abs(q[1] - 0.044715) < 1e-6:
            break
    else:
        return None
    one = _single_user(th.outputs[0])
    if not _is(one, "Add") or not _close(_scalar(_other(one, th.outputs[0])), 1.0):
        return None
    last = climb_product(one.outputs[0], [x, one.outputs[0]], 0.5)
    return ("Gelu", x, last, {"approximate": "tanh"}) if last is not None else None


_MATCHERS = {
    "Sigmoid": _match_silu,
    "Softplus": _match_mish,
    "HardSigmoid": _match_hardsigmoid,
    "Clip": _match_hardswish_clip,
    "Tanh": _match_gelu_tanh,
}


def fuse_activations(model: ir.Model) -> int:
    """Rewrite every matching activation chain of the main graph; returns how many."""
    graph = model.graph
    count = 0
    for node in list(graph):
        matcher = _MATCHERS.get(node.op_type)
        if matcher is None or node.domain not in ("", "ai.onnx") or node.graph is None:
            continue
        m = matcher(node)
        if m is None:
            continue
        op, x, last, attrs = m
        fused = ir.Node(DOMAIN, op, [x], attributes=[ir.AttrString(k, v) for k, v in attrs.items()],
                        name=(node.name or op.lower()) + f"_{op.lower()}")
        replace_output(graph, last, fused)
        count += 1
    return finish(model, count)
