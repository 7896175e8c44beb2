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
from onnx_ir.passes import PassResult

from ..match import (DOMAIN, FLOATS, close, finish, is_op, other, product, replace_output, scalar,
                    single_user)


def _scalar_input(node: ir.Node, i: int) -> float | None:
    ins = list(node.inputs)
    return scalar(ins[i]) if i < len(ins) else None


def _same(factors: list[ir.Value], want: list[ir.Value]) -> bool:
    return sorted(map(id, factors)) == sorted(map(id, want))


def climb_product(start: ir.Value, want: list[ir.Value], const: float,
                  steps: int = 4) -> ir.Node | None:
    """The Mul/Div node above ``start`` whose output is exactly ``prod(want) * const``
    (``start`` being one of ``want``); None when the chain of single users ends first."""
    v = start
    stop = {id(w) for w in want}
    for _ in range(steps):
        user = single_user(v)
        if user is None or not (is_op(user, "Mul") or is_op(user, "Div")):
            return None
        got = product(user.outputs[0], stop)
        if got is not None and _same(got[0], want) and close(got[1], const):
            return user
        v = user.outputs[0]
    return None


def _float(x: ir.Value | None) -> bool:
    return x is not None and x.dtype in FLOATS and x.const_value is None


def _match_silu(sig: ir.Node):
    x = sig.inputs[0]
    mul = single_user(sig.outputs[0])
    if _float(x) and is_op(mul, "Mul") and other(mul, sig.outputs[0]) is x:
        return "Silu", x, mul, {}
    return None


def _match_mish(sp: ir.Node):
    x = sp.inputs[0]
    th = single_user(sp.outputs[0])
    if not (_float(x) and is_op(th, "Tanh")):
        return None
    mul = single_user(th.outputs[0])
    if is_op(mul, "Mul") and other(mul, th.outputs[0]) is x:
        return "Mish", x, mul, {}
    return None


def _match_hardsigmoid(hs: ir.Node):
    x = hs.inputs[0]
    a, b = hs.attributes.get("alpha"), hs.attributes.get("beta")
    alpha = 0.2 if a is None else a.as_float()
    beta = 0.5 if b is None else b.as_float()
    if not (_float(x) and close(alpha, 1 / 6) and close(beta, 0.5)):
        return None
    mul = single_user(hs.outputs[0])
    if is_op(mul, "Mul") and other(mul, hs.outputs[0]) is x:
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
    lo = scalar(ins[1]) if len(ins) > 1 and ins[1] is not None else -math.inf
    hi = scalar(ins[2]) if len(ins) > 2 and ins[2] is not None else math.inf
    return lo, hi


def _match_hardswish_clip(clip: ir.Node):
    """x * clip(x + 3, 0, 6) / 6 (the relu6 spelling of MobileNetV3 / YOLOv5 exports)."""
    if _clip_bounds(clip) != (0.0, 6.0):
        return None
    add = clip.inputs[0].producer() if clip.inputs[0] is not None else None
    if not is_op(add, "Add") or single_user(clip.inputs[0]) is not clip:
        return None
    ins = list(add.inputs)
    x = next((v for v in ins if scalar(v) is None), None)
    if not _float(x) or not close(scalar(other(add, x)), 3.0):
        return None
    last = climb_product(clip.outputs[0], [x, clip.outputs[0]], 1 / 6)
    return ("HardSwish", x, last, {}) if last is not None else None


_SQRT_2_PI = math.sqrt(2 / math.pi)


def _match_gelu_tanh(th: ir.Node):
    inner = th.inputs[0]
    if inner is None:
        return None
    p = product(inner)
    if p is None or len(p[0]) != 1 or not close(p[1], _SQRT_2_PI):
        return None
    add = p[0][0].producer()
    if not is_op(add, "Add") or single_user(p[0][0]) is None:
        return None
    a, b = add.inputs
    for x, cubic in ((a, b), (b, a)):
        if not _float(x) or cubic is None or single_user(cubic) is None:
            continue
        q = product(cubic, {id(x)})
        if q is not None and _same(q[0], [x, x, x]) and abs(q[1] - 0.044715) < 1e-6:
            break
    else:
        return None
    one = single_user(th.outputs[0])
    if not is_op(one, "Add") or not close(scalar(other(one, th.outputs[0])), 1.0):
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


def fuse_activations(model: ir.Model) -> PassResult:
    """Rewrite every matching activation chain of the main graph."""
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
