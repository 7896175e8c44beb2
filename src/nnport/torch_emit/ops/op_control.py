"""Control flow: If, Loop, Scan become Python ``if``/``for``/``while`` around the subgraph code.

Subgraph bodies are emitted inline (``ctx.subgraph``) with their inputs bound to the loop
variables; outer-scope values are used directly.  Loop-carried values are reassigned in one
tuple assignment at the end of each iteration, so a body that swaps values stays correct.
Scan outputs are collected in Python lists and stacked once the loop ends.

With ``--control-flow cond`` an If on a runtime value becomes ``torch.cond`` with its branches
as local functions, so that torch.export keeps both branches instead of specializing on the
example input (a Python ``if`` on a tensor is a data-dependent guard there).
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, iter_nodes, register

_CF_VERSIONS = (1, 11, 13, 16, 19, 21, 23, 24, 25)


def _assign(ctx: Ctx, targets: list[str], exprs: list[str]) -> None:
    pairs = [(t, e) for t, e in zip(targets, exprs) if t != e]
    if not pairs:
        return
    if len(pairs) == 1:
        ctx.line(f"{pairs[0][0]} = {pairs[0][1]}")
    else:
        ctx.line(f"{', '.join(t for t, _ in pairs)} = {', '.join(e for _, e in pairs)}")


def _used(value) -> bool:
    return value is not None and (bool(value.uses()) or value.is_graph_output())


@register("If", _CF_VERSIONS)
def if_(ctx: Ctx, cond: Arg, *, then_branch, else_branch):
    names = ctx.out_names
    c = ctx.const(cond)
    if c is not None:  # a constant condition: only the branch taken
        branch = then_branch if bool(c.reshape(-1)[0]) else else_branch
        _assign(ctx, names, ctx.subgraph(branch, []))
        return None
    if ctx.control_flow == "cond" and not _tracked(ctx, cond.value) and _cond_fits(
            ctx, then_branch, else_branch):
        _torch_cond(ctx, cond, then_branch, else_branch)
        return None
    ctx.line(f"if bool({cond}):")
    with ctx.indent():
        n0 = len(ctx.gen.lines)
        _assign(ctx, names, ctx.subgraph(then_branch, []))
        if len(ctx.gen.lines) == n0:
            ctx.line("pass")
    ctx.line("else:")
    with ctx.indent():
        n0 = len(ctx.gen.lines)
        _assign(ctx, names, ctx.subgraph(else_branch, []))
        if len(ctx.gen.lines) == n0:
            ctx.line("pass")
    return None


# ops whose output may be a view of their input: a torch.cond branch must not return an alias
# of what it was given, so such outputs are cloned
_VIEW_OPS = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice",
             "Split", "Expand", "Gather", "Cast", "Unbind"}


def _tracked(ctx: Ctx, v) -> bool:
    """The value is held as Python values (shape arithmetic, symbolic.py), not a tensor."""
    return v is not None and (bool(ctx.gen.syms.get(id(v))) or id(v) in ctx.gen.bools)


def _cond_fits(ctx: Ctx, then_branch, else_branch) -> bool:
    """torch.cond takes branches that return tensors (not sequences or optionals) of the same
    type and shape; where the ONNX branches differ (ONNX allows it), the If stays a Python
    ``if`` and the header says so."""
    outs = list(ctx.node.outputs) + list(then_branch.outputs) + list(else_branch.outputs)
    if not all(v.type is None or isinstance(v.type, ir.TensorType) for v in outs):
        why = "its branches return sequences or optionals"
    elif any(_differ(a, b) for a, b in zip(then_branch.outputs, else_branch.outputs)):
        why = "its branches return different shapes or types"
    else:
        return True
    ctx.note(f"{_if_label(ctx.node)} stays a Python if: {why}, which torch.cond does not take.")
    return False


def _differ(a, b) -> bool:
    if a.dtype is not None and b.dtype is not None and a.dtype != b.dtype:
        return True
    if a.shape is None or b.shape is None:
        return False
    if len(a.shape) != len(b.shape):
        return True
    return any(isinstance(x, int) and isinstance(y, int) and x != y
               for x, y in zip(a.shape.dims, b.shape.dims))


def _if_label(node) -> str:
    return f"If node {node.name!r}" if node.name else "An If node"


def _free_values(graphs) -> list:
    """Values the graphs (and their subgraphs) read from outside, constants aside, in order."""
    inside = set()
    for g in graphs:
        inside.update(id(v) for v in g.inputs)
        for node, _ in iter_nodes(g):
            inside.update(id(v) for v in node.outputs)
            for attr in node.attributes.values():
                subs = [attr.value] if attr.type == ir.AttributeType.GRAPH else (
                    list(attr.value) if attr.type == ir.AttributeType.GRAPHS else [])
                for sub in subs:
                    inside.update(id(v) for v in sub.inputs)
    free, seen = [], set()
    for g in graphs:
        for node, _ in iter_nodes(g):
            for v in node.inputs:
                if v is None or id(v) in inside or id(v) in seen or v.const_value is not None:
                    continue
                seen.add(id(v))
                free.append(v)
    return free


def _torch_cond(ctx: Ctx, cond: Arg, then_branch, else_branch) -> None:
    """``a, b = torch.cond(pred, then_branch, else_branch, (x, y))``, each branch a local
    function of the tensors it reads (other values: weights, tracked shape ints, sequences,
    are read from the enclosing scope, which torch.cond allows)."""
    ctx.note("If nodes on runtime values are torch.cond calls (--control-flow cond): "
             "torch.export keeps both branches.")
    operands = []
    for v in _free_values([then_branch, else_branch]):
        expr = ctx.name_of(v)
        if isinstance(v.type, ir.TensorType) and expr.isidentifier() and not (
                expr.startswith("__") or _tracked(ctx, v)):
            operands.append(expr)
    fns = []
    for label, branch in (("then_branch", then_branch), ("else_branch", else_branch)):
        fn = ctx.tmp(label)
        ctx.line(f"def {fn}({', '.join(operands)}):")
        with ctx.indent():
            outs = ctx.subgraph(branch, [])
            rets = []
            for v, expr in zip(branch.outputs, outs):
                p = v.producer()
                owned = p is not None and p.graph is branch and p.op_type not in _VIEW_OPS
                rets.append(expr if owned else f"{expr}.clone()")
            ctx.line(f"return {', '.join(rets)}")
        fns.append(fn)
    args = ", ".join(operands) + ("," if len(operands) == 1 else "")
    names = ctx.out_names
    ctx.line(f"{', '.join(names)} = torch.cond({cond}, {fns[0]}, {fns[1]}, ({args}))")


@register("Loop", _CF_VERSIONS)
def loop(ctx: Ctx, M: Arg = None, cond: Arg = None, *v_initial: Arg, body):
    n_carried = len(v_initial)
    carried = ctx.out_names[:n_carried]
    scans = ctx.out_names[n_carried:]
    for name, init in zip(carried, v_initial):
        ctx.line(f"{name} = {init}")
    lists = [ctx.tmp(f"{s}_list") for s in scans]
    for lst in lists:
        ctx.line(f"{lst} = []")
    # the loop condition variable, when there is one
    cond_var = None
    c = ctx.const(cond)
    if cond is not None and not (c is not None and bool(c.reshape(-1)[0])
                                 and _passes_cond_through(body)):
        cond_var = ctx.tmp("cond")
        # always a tensor, as the body's condition output is (TorchScript keeps one type)
        init = f"torch.tensor({ctx.lit(bool(c.reshape(-1)[0]))})" if c is not None else cond
        ctx.line(f"{cond_var} = {init}")
    it = ctx.tmp("i")
    if M is not None:
        trip = ctx.const(M)
        trip_src = str(int(trip.reshape(()).item())) if trip is not None else f"int({M})"
        ctx.line(f"for {it} in range({trip_src}):")
        with ctx.indent():
            if cond_var is not None:
                ctx.line(f"if not bool({cond_var}):")
                with ctx.indent():
                    ctx.line("break")
            _loop_body(ctx, body, it, cond_var, carried, lists, manual_count=False)
    else:
        ctx.line(f"{it} = 0")
        ctx.line(f"while bool({cond_var}):" if cond_var is not None else "while True:")
        with ctx.indent():
            _loop_body(ctx, body, it, cond_var, carried, lists, manual_count=True)
    for name, lst, out in zip(scans, lists, body.outputs[1 + n_carried:]):
        ctx.line(f"{name} = {_stack_or_empty(ctx, lst, out)}")
    return None


def _stack_or_empty(ctx: Ctx, lst: str, out) -> str:
    """Stack a loop's scan output; zero iterations give an empty tensor instead of an error:
    of the static per-iteration shape where it is known, else of shape ``(0,)`` (what
    onnxruntime returns when it cannot tell the shape either)."""
    shape = None if out.shape is None else out.shape.dims
    if out.dtype is None:
        return f"torch.stack({lst})"
    if shape is None or not all(isinstance(d, int) for d in shape):
        shape = ()
    dims = ", ".join(str(d) for d in (0, *shape))
    return (f"torch.stack({lst}) if {lst} else "
            f"torch.zeros({dims}, dtype={ctx.dtype_src(out.dtype)})")


def _passes_cond_through(body) -> bool:
    """The body's condition output is its condition input (maybe through Identity nodes)."""
    v = body.outputs[0]
    while v is not body.inputs[1]:
        p = v.producer()
        if p is None or p.op_type != "Identity":
            return False
        v = p.inputs[0]
    return True


def _loop_body(ctx: Ctx, body, it: str, cond_var, carried, lists, manual_count: bool):
    b_iter, b_cond = body.inputs[0], body.inputs[1]
    iter_expr = None
    if _used_in_graph(b_iter):
        iter_expr = ctx.tmp("iter_num")
        ctx.line(f"{iter_expr} = torch.tensor({it}, dtype=torch.int64)")
    cond_in = cond_var
    if cond_in is None and _used_in_graph(b_cond):
        cond_in = "torch.tensor(True)"
    outs = ctx.subgraph(body, [iter_expr or "None", cond_in or "None", *carried])
    cond_out, rest = outs[0], outs[1:]
    targets = list(carried)
    exprs = list(rest[: len(carried)])
    if cond_var is not None:
        targets.append(cond_var)
        exprs.append(cond_out)
    for lst, e in zip(lists, rest[len(carried):]):
        ctx.line(f"{lst}.append({e})")
    _assign(ctx, targets, exprs)
    if manual_count:
        ctx.line(f"{it} += 1")


def _used_in_graph(value) -> bool:
    return bool(value.uses()) or value.is_graph_output()


def _scan_body(ctx: Ctx, body, states: list[str], slices: list[str], lists: list[str]):
    outs = ctx.subgraph(body, [*states, *slices])
    n = len(states)
    for lst, e in zip(lists, outs[n:]):
        ctx.line(f"{lst}.append({e})")
    _assign(ctx, states, outs[:n])


def _norm_axis(ctx: Ctx, axis: int, rank: int | None) -> int:
    if axis >= 0:
        return axis
    if rank is None:
        ctx.fail("a negative scan axis needs a known rank")
    return axis + rank


@register("Scan", (9, 11, 16, 19, 21, 23, 24, 25))
def scan(ctx: Ctx, *inputs: Arg, body, num_scan_inputs, scan_input_axes=None,
         scan_input_directions=None, scan_output_axes=None, scan_output_directions=None):
    n_state = len(inputs) - num_scan_inputs
    states = ctx.out_names[:n_state]
    outs = ctx.out_names[n_state:]
    xs = inputs[n_state:]
    in_axes = list(scan_input_axes or [0] * num_scan_inputs)
    in_dirs = list(scan_input_directions or [0] * num_scan_inputs)
    out_axes = list(scan_output_axes or [0] * len(outs))
    out_dirs = list(scan_output_directions or [0] * len(outs))
    for name, init in zip(states, inputs[:n_state]):
        ctx.line(f"{name} = {init}")
    lists = [ctx.tmp(f"{o}_list") for o in outs]
    for lst in lists:
        ctx.line(f"{lst} = []")
    axes = [_norm_axis(ctx, a, ctx.rank(x)) for a, x in zip(in_axes, xs)]
    it = ctx.tmp("t")
    ctx.line(f"for {it} in range({xs[0]}.shape[{axes[0]}]):")
    with ctx.indent():
        slices = []
        for x, ax, d in zip(xs, axes, in_dirs):
            idx = f"{x}.shape[{ax}] - 1 - {it}" if d else it
            slices.append(f"{x}.select({ax}, {idx})")
        _scan_body(ctx, body, states, slices, lists)
    body_out_ranks = [None if v.shape is None else len(v.shape) for v in body.outputs[n_state:]]
    for name, lst, ax, d, r in zip(outs, lists, out_axes, out_dirs, body_out_ranks):
        if ax < 0:
            if r is None:
                ctx.fail("a negative scan output axis needs the body output's rank")
            ax += r + 1
        seq = f"{lst}[::-1]" if d else lst
        ctx.line(f"{name} = torch.stack({seq}, {ax})" if ax else f"{name} = torch.stack({seq})")
    return None


@register("Scan", (8,))
def scan8(ctx: Ctx, sequence_lens: Arg = None, *inputs: Arg, body, num_scan_inputs,
          directions=None):
    """Scan-8: every input has a leading batch axis; the scan axis is 1; per-batch lengths."""
    n_state = len(inputs) - num_scan_inputs
    states_in, xs = inputs[:n_state], inputs[n_state:]
    n_out = len(ctx.out_names) - n_state
    dirs = list(directions or [0] * num_scan_inputs)
    b = ctx.tmp("b")
    st_lists = [ctx.tmp(f"{n}_list") for n in ctx.out_names[:n_state]]
    out_lists = [ctx.tmp(f"{n}_list") for n in ctx.out_names[n_state:]]
    for lst in st_lists + out_lists:
        ctx.line(f"{lst} = []")
    ctx.line(f"for {b} in range({xs[0]}.shape[0]):")
    with ctx.indent():
        states = [ctx.tmp("state") for _ in range(n_state)]
        for s, init in zip(states, states_in):
            ctx.line(f"{s} = {init}[{b}]")
        steps = ctx.tmp("steps")
        if sequence_lens is None:
            ctx.line(f"{steps} = {xs[0]}.shape[1]")
        else:
            ctx.line(f"{steps} = int({sequence_lens}[{b}])")
        per = [ctx.tmp("ys") for _ in range(n_out)]
        for lst in per:
            ctx.line(f"{lst} = []")
        it = ctx.tmp("t")
        ctx.line(f"for {it} in range({steps}):")
        with ctx.indent():
            slices = []
            for x, d in zip(xs, dirs):
                idx = f"{steps} - 1 - {it}" if d else it
                slices.append(f"{x}[{b}, {idx}]")
            _scan_body(ctx, body, states, slices, per)
        for lst, s in zip(st_lists, states):
            ctx.line(f"{lst}.append({s})")
        for lst, ys in zip(out_lists, per):
            # steps past this batch entry's length are zero
            ctx.line(f"{ys} += [torch.zeros_like({ys}[0])] * ({xs[0]}.shape[1] - {steps})")
            ctx.line(f"{lst}.append(torch.stack({ys}))")
    for name, lst in zip(ctx.out_names, st_lists + out_lists):
        ctx.line(f"{name} = torch.stack({lst})")
    return None
