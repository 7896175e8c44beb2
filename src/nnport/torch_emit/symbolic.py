"""Shape arithmetic as Python ints instead of tensors.

Exporters compute reshape targets with Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains.
Converted node by node that is a dozen tensor ops per reshape; here those values are tracked as
Python expressions (``x.shape[0]``, ``h * w``), so the chain prints as ``x.reshape(x.shape[0], -1)``.
A tracked value that reaches an op with no symbolic rule is materialized as a tensor at that
point (``torch.tensor([...])``), so correctness never depends on a rule being present.

Each rule returns True when it handled the node (outputs bound), False to fall back to the
registered emitter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx_ir as ir

from ..dtypes import torch_dtype_src
from .naming import py_literal

if TYPE_CHECKING:  # the emitter API's types, for reading only
    from .emitter import Arg, Ctx

_INT_TYPES = (ir.DataType.INT64, ir.DataType.INT32)
_MAX_LEN = 64


class E(str):
    """One element of a tracked value: a Python int expression; ``nonneg`` when known >= 0,
    ``low`` a known lower bound (or None)."""

    nonneg: bool
    literal: int | None
    low: int | None

    def __new__(cls, text: str, nonneg: bool = False, low: int | None = None):
        obj = super().__new__(cls, text)
        try:
            obj.literal = int(text)
        except ValueError:
            obj.literal = None
        if obj.literal is not None:
            low = obj.literal
        elif nonneg and (low is None or low < 0):
            low = 0
        obj.low = low
        obj.nonneg = nonneg or (low is not None and low >= 0)
        return obj


def lit(v: int) -> E:
    return E(str(int(v)))


def sym_of(ctx: Ctx, arg: Arg | None):
    """A tracked value: list[E] for 1-D, E for 0-d; small int constants count too."""
    if arg is None or arg.value is None:
        return None
    s = ctx.gen.syms.get(id(arg.value))
    if s is not None:
        return s[0]
    c = ctx.const(arg)
    if c is not None and c.dtype.kind in "iu" and c.ndim <= 1 and c.size <= _MAX_LEN:
        return lit(c.item()) if c.ndim == 0 else [lit(v) for v in c.tolist()]
    return None


def _set(ctx: Ctx, i: int, value, device: str | None) -> bool:
    out = ctx.node.outputs[i]
    dt = out.dtype if out.dtype in _INT_TYPES else ir.DataType.INT64
    ctx.gen.set_sym(out, value, dt, device)
    return True


def _device(ctx: Ctx, *args: Arg) -> str | None:
    for a in args:
        if a is None or a.value is None:
            continue
        s = ctx.gen.syms.get(id(a.value))
        if s is not None and s[2]:
            return s[2]
    return None


def _axes(ctx: Ctx, axes_arg, attr):
    if attr is not None:
        return list(attr)
    if axes_arg is None:
        return None
    c = ctx.const(axes_arg)
    return None if c is None else [int(v) for v in np.asarray(c).reshape(-1)]


# ---- producers --------------------------------------------------------------------------------
def _shape(ctx, args, kw):
    x = args[0]
    shp = ctx.shape(x)
    if shp is None:
        return False
    r = len(shp)
    start, end = kw.get("start", 0), kw.get("end", None)
    idx = list(range(r))[slice(start, end)]
    # a dynamic dim counts as >= 1 (as torch.export assumes): ``(x.shape[2] - 1) // 2 + 1``,
    # the output size of a strided conv, stays a Python int
    vals = [lit(shp[i]) if shp[i] is not None else E(f"{x}.shape[{i}]", True, 1) for i in idx]
    return _set(ctx, 0, vals, f"{x}.device")


def _gather(ctx, args, kw):
    data, idx = args[0], args[1]
    s = sym_of(ctx, data)
    i = ctx.const(idx)
    if not isinstance(s, list) or i is None or kw.get("axis", 0) not in (0, -1):
        return False
    n = len(s)
    try:
        if i.ndim == 0:
            return _set(ctx, 0, s[int(i) % n if int(i) < 0 else int(i)], _device(ctx, data))
        if i.ndim == 1:
            return _set(ctx, 0, [s[int(k)] for k in i.tolist()], _device(ctx, data))
    except IndexError:
        return False
    return False


def _unsqueeze(ctx, args, kw):
    s = sym_of(ctx, args[0])
    axes = _axes(ctx, args[1] if len(args) > 1 else None, kw.get("axes"))
    if isinstance(s, E) and axes in ([0], [-1]):
        return _set(ctx, 0, [s], _device(ctx, args[0]))
    return False


def _squeeze(ctx, args, kw):
    s = sym_of(ctx, args[0])
    if isinstance(s, list) and len(s) == 1:
        return _set(ctx, 0, s[0], _device(ctx, args[0]))
    return False


def _concat(ctx, args, kw):
    parts = [sym_of(ctx, a) for a in args if a is not None]
    if kw.get("axis", 0) not in (0, -1) or not parts:
        return False
    if not all(isinstance(p, list) for p in parts):
        return False
    if not any(ctx.gen.syms.get(id(a.value)) for a in args if a is not None):
        return False  # all constants: nothing to gain
    out = [e for p in parts for e in p]
    return _set(ctx, 0, out, _device(ctx, *args)) if len(out) <= _MAX_LEN else False


def _slice(ctx, args, kw):
    if ctx.opset < 10:
        starts, ends, axes, steps = kw.get("starts"), kw.get("ends"), kw.get("axes"), None
    else:
        vals = [ctx.const(a) if a is not None else None for a in list(args[1:]) + [None] * 4]
        starts, ends, axes, steps = vals[:4]
        if starts is None or ends is None or (len(args) > 3 and args[3] is not None and axes is None) \
                or (len(args) > 4 and args[4] is not None and steps is None):
            return False
        starts, ends = starts.tolist(), ends.tolist()
        axes = None if axes is None else axes.tolist()
        steps = None if steps is None else steps.tolist()
    s = sym_of(ctx, args[0])
    if not isinstance(s, list) or starts is None or len(starts) != 1:
        return False
    if axes not in (None, [0], [-1]):
        return False
    step = steps[0] if steps else 1
    if step == 0:
        return False
    n = len(s)
    lo, hi = int(starts[0]), int(ends[0])
    sl = slice(max(min(lo, n), -n - 1) if lo < 0 else min(lo, n),
               None if (step < 0 and hi < -n) else (max(hi, -n - 1) if hi < 0 else min(hi, n)),
               step)
    return _set(ctx, 0, s[sl], _device(ctx, args[0]))


def _cast(ctx, args, kw):
    s = sym_of(ctx, args[0])
    rec = ctx.gen.syms.get(id(args[0].value))
    if s is None or rec is None or rec[1] not in _INT_TYPES:
        return False
    to = kw.get("to")
    if to in (int(ir.DataType.INT64), int(ir.DataType.INT32)):
        return _set(ctx, 0, s, _device(ctx, args[0]))
    if isinstance(s, E) and to in (int(ir.DataType.FLOAT), int(ir.DataType.DOUBLE)):
        # an int dim used as a float scalar (e.g. the bound of a Range)
        ctx.gen.set_sym(ctx.node.outputs[0], s, ir.DataType(to), rec[2])
        return True
    return False


def _scalar_or_const(ctx, a):
    v = sym_of(ctx, a)
    if v is None:
        c = ctx.const(a)
        if c is not None and c.size == 1 and c.dtype.kind == "f":
            return E(ctx.lit(c.reshape(()).item(), ctx.dtype(a)))
    return v


def _range(ctx, args, kw):
    vals = [_scalar_or_const(ctx, a) for a in args[:3]]
    if any(not isinstance(v, E) for v in vals) or not any(
            ctx.gen.syms.get(id(a.value)) for a in args[:3]):
        return False
    dts = {ctx.gen.syms[id(a.value)][1] if ctx.gen.syms.get(id(a.value)) else ctx.dtype(a)
           for a in args[:3]}
    if len(dts) != 1:
        return False
    dt = dts.pop()
    if dt not in _INT_TYPES + (ir.DataType.FLOAT, ir.DataType.DOUBLE):
        return False
    start, limit, delta = vals
    unit = start in ("0", "0.0") and delta in ("1", "1.0")
    parts = [limit] if unit else [start, limit, delta]
    dev = _device(ctx, *args[:3])
    dev_s = f", device={dev}" if dev else ""
    return _emit(ctx, f"torch.arange({', '.join(parts)}, dtype={ctx.dtype_src(dt)}{dev_s})")


def _identity(ctx, args, kw):
    s = ctx.gen.syms.get(id(args[0].value)) if args and args[0] is not None else None
    if s is None:
        return False
    return _set(ctx, 0, s[0], s[2])


def _arith(op: str):
    def rule(ctx, args, kw):
        a, b = sym_of(ctx, args[0]), sym_of(ctx, args[1])
        if a is None or b is None:
            return False
        if not (ctx.gen.syms.get(id(args[0].value)) or ctx.gen.syms.get(id(args[1].value))):
            return False
        dts = {(ctx.gen.syms[id(a.value)][1] if ctx.gen.syms.get(id(a.value)) else ctx.dtype(a))
               for a in args[:2]}
        if len(dts) != 1 or kw.get("broadcast"):
            return False
        dt = dts.pop()
        if dt not in _INT_TYPES + (ir.DataType.FLOAT, ir.DataType.DOUBLE):
            return False
        if dt not in _INT_TYPES and (isinstance(a, list) or isinstance(b, list)):
            return False  # float vectors stay tensors
        la, lb = isinstance(a, list), isinstance(b, list)
        if la and lb and len(a) != len(b) and 1 not in (len(a), len(b)):
            return False
        n = max(len(a) if la else 1, len(b) if lb else 1)
        out = []
        for i in range(n):
            x = a[i if len(a) > 1 else 0] if la else a
            y = b[i if len(b) > 1 else 0] if lb else b
            e = _combine(op, x, y) if dt in _INT_TYPES else E(f"{_paren(x)} {op} {_paren(y)}")
            if e is None:
                return False
            out.append(e)
        if dt not in _INT_TYPES:
            # Python computes in double; for +-*/ of float32-exact operands the float32
            # rounding of that result equals float32 arithmetic
            ctx.gen.set_sym(ctx.node.outputs[0], out[0], dt, _device(ctx, *args))
            return True
        return _set(ctx, 0, out if (la or lb) else out[0], _device(ctx, *args))

    return rule


def _combine(op: str, x: E, y: E) -> E | None:
    if x.literal is not None and y.literal is not None:
        a, b = x.literal, y.literal
        if op == "+":
            return lit(a + b)
        if op == "-":
            return lit(a - b)
        if op == "*":
            return lit(a * b)
        if op == "/" and b != 0:
            return lit(int(a / b))
        if op == "%" and b != 0:
            return lit(a % b)  # ONNX integer Mod (fmod=0) takes the divisor's sign, as Python
        return None
    if op == "*" and (x.literal == 1 or y.literal == 1):
        return y if x.literal == 1 else x
    if op in "+-" and y.literal == 0:
        return x
    if op == "/":
        if y.literal == 1:
            return x
        if x.nonneg and y.nonneg:
            low = x.low // y.literal if x.low is not None and y.literal else 0
            return E(f"{_paren(x)} // {_paren(y)}", True, low)
        return None
    if op == "%":
        if y.literal is not None and y.literal > 0:
            return E(f"{_paren(x)} % {_paren(y)}", True)
        return None
    low = None
    if x.low is not None and y.low is not None:
        if op == "+":
            low = x.low + y.low
        elif op == "-" and y.literal is not None:
            low = x.low - y.literal
        elif op == "*" and x.low >= 0 and y.low >= 0:
            low = x.low * y.low
    return E(f"{_paren(x)} {op} {_paren(y)}", op in "+*" and x.nonneg and y.nonneg, low)


def _paren(e: E) -> str:
    return e if e.literal is not None or e.replace("_", "").replace(".", "").replace(
        "[", "").replace("]", "").isalnum() else f"({e})"


def _constant_of_shape(ctx, args, kw):
    s = sym_of(ctx, args[0])
    if not isinstance(s, list) or len(s) != 1 or s[0].literal is None:
        return False
    value = kw.get("value")
    v = 0 if value is None else np.asarray(value).reshape(-1)[0]
    out = ctx.node.outputs[0]
    if not isinstance(v, (np.integer, int)) or s[0].literal > _MAX_LEN or (
            out.dtype not in (None,) + _INT_TYPES and value is not None
            and np.asarray(value).dtype.kind not in "iu"):
        return False
    if value is not None and np.asarray(value).dtype not in (np.int64, np.int32):
        return False
    return _set(ctx, 0, [lit(int(v))] * s[0].literal, _device(ctx, args[0]))


def _equal_where(ctx, args, kw):
    """Equal(tracked, const) where the answer is known: shape dims are never negative."""
    a, b = sym_of(ctx, args[0]), sym_of(ctx, args[1])
    if not isinstance(a, list) or b is None or not ctx.gen.syms.get(id(args[0].value)):
        return False
    bl = b if isinstance(b, list) else [b] * len(a)
    if len(bl) != len(a):
        return False
    res = []
    for x, y in zip(a, bl):
        if x.literal is not None and y.literal is not None:
            res.append(x.literal == y.literal)
        elif x.nonneg and y.literal is not None and y.literal < 0:
            res.append(False)
        else:
            return False
    ctx.gen.bools[id(ctx.node.outputs[0])] = res
    ctx.gen.set_sym(ctx.node.outputs[0], [lit(int(r)) for r in res], ir.DataType.BOOL, None)
    return True


def _where(ctx, args, kw):
    cond = ctx.gen.bools.get(id(args[0].value)) if args[0].value is not None else None
    if cond is None:
        c = ctx.const(args[0])
        if c is None or c.ndim != 1:
            return False
        cond = [bool(v) for v in c.tolist()]
    x, y = sym_of(ctx, args[1]), sym_of(ctx, args[2])
    if x is None or y is None:
        return False
    xl = x if isinstance(x, list) else [x] * len(cond)
    yl = y if isinstance(y, list) else [y] * len(cond)
    if not (len(xl) == len(yl) == len(cond)):
        return False
    return _set(ctx, 0, [a if c else b for c, a, b in zip(cond, xl, yl)], _device(ctx, *args[1:]))


# ---- consumers --------------------------------------------------------------------------------
def _reshape(ctx, args, kw):
    if len(args) < 2:
        return False
    data = sym_of(ctx, args[0])
    if isinstance(data, (list, E)) and ctx.gen.syms.get(id(args[0].value)):
        # a tracked value reshaped to 1-D stays tracked
        shape = ctx.const(args[1])
        n = len(data) if isinstance(data, list) else 1
        if shape is not None and shape.ndim == 1 and shape.size == 1 and int(shape[0]) in (-1, n):
            return _set(ctx, 0, data if isinstance(data, list) else [data], _device(ctx, args[0]))
        return False
    s = sym_of(ctx, args[1])
    if not isinstance(s, list) or not ctx.gen.syms.get(id(args[1].value)):
        return False
    x = args[0]
    dims = []
    for i, e in enumerate(s):
        if e.literal == 0 and not kw.get("allowzero", 0):
            dims.append(f"{x}.shape[{i}]")
        else:
            dims.append(str(e))
    return _emit(ctx, f"{x}.reshape({', '.join(dims)})")


def _expand(ctx, args, kw):
    s = sym_of(ctx, args[1])
    x = args[0]
    if not isinstance(s, list) or not ctx.gen.syms.get(id(args[1].value)):
        return False
    xs = ctx.shape(x)
    if xs is None or len(s) < len(xs):
        return False
    off = len(s) - len(xs)
    dims = []
    for i, e in enumerate(s):
        j = i - off
        if j < 0:
            if e.literal is None and not e.nonneg:
                return False
            dims.append(str(e))
        elif e.literal == 1 or e == f"{x}.shape[{j}]":
            dims.append("-1")
        elif xs[j] == 1 or (e.literal is not None and xs[j] == e.literal):
            dims.append(str(e))
        else:
            # ONNX broadcasts both ways; torch's expand needs the broadcast shape
            return _emit(ctx, f"{x}.expand(torch.broadcast_shapes({x}.shape, "
                              f"({', '.join(s)}{',' if len(s) == 1 else ''})))")
    if all(d == "-1" for d in dims) and off == 0:
        return _emit(ctx, str(x))
    return _emit(ctx, f"{x}.expand({', '.join(dims)})")


def _emit(ctx: Ctx, expr: str) -> bool:
    ctx.gen.emit(f"{ctx.out_names[0]} = {expr}", ctx.node)
    ctx.gen.bind(ctx.node.outputs[0], ctx.out_names[0])
    return True


RULES: dict[str, Callable] = {
    "Shape": _shape, "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Concat": _concat, "Slice": _slice, "Cast": _cast, "Identity": _identity,
    "Add": _arith("+"), "Sub": _arith("-"), "Mul": _arith("*"), "Div": _arith("/"),
    "Mod": lambda ctx, args, kw: not kw.get("fmod") and ctx.dtype(args[0]) in _INT_TYPES
    and _arith("%")(ctx, args, kw),
    "ConstantOfShape": _constant_of_shape, "Equal": _equal_where, "Where": _where,
    "Reshape": _reshape, "Expand": _expand, "Range": _range,
}


def try_symbolic(ctx: Ctx, args: list, kwargs: dict) -> bool:
    node = ctx.node
    if node.domain not in ("", "ai.onnx") or len(node.outputs) != 1:
        return False
    rule = RULES.get(node.op_type)
    if rule is None or not args or any(a is None for a in args[:1]):
        return False
    try:
        return bool(rule(ctx, args, kwargs))
    except (TypeError, ValueError, IndexError, KeyError):
        return False


def materialize(rec) -> str:
    """A tracked value as a tensor expression, where code needs one: ``rec`` is
    (list of element expressions or one expression, dtype, device expression or None)."""
    sym, dtype, device = rec
    if dtype == ir.DataType.BOOL:
        body = py_literal([bool(int(e)) for e in sym]) if isinstance(sym, list) else (
            py_literal(bool(int(sym))))
    else:
        body = f"[{', '.join(sym)}]" if isinstance(sym, list) else str(sym)
    dev = f", device={device}" if device else ""
    return f"torch.tensor({body}, dtype={torch_dtype_src(dtype)}{dev})"
