"""Reduce* -> Reduction (operators.md): 0=operation (0 sum 1 asum 2 sumsq 3 mean 4 max 5 min
6 prod 7 l1 8 l2 9 logsum 10 logsumexp) 1=reduce_all 2=coeff -23303 3=axes 4=keepdims
5=fixbug0 (1: axes count from the outermost ncnn dim)."""
from __future__ import annotations

from ..registry import register
from .common import attrs_of

OPS = {"ReduceSum": 0, "ReduceSumSquare": 2, "ReduceMean": 3, "ReduceMax": 4, "ReduceMin": 5,
       "ReduceProd": 6, "ReduceL1": 7, "ReduceL2": 8, "ReduceLogSum": 9, "ReduceLogSumExp": 10}


# 11: negative axes; 13 (ReduceSum) and 18 (the others): axes an input, noop_with_empty_axes;
# the rest add types
_VERSIONS = {op: (1, 11, 13) if op == "ReduceSum" else (1, 11, 13, 18) for op in OPS}
_VERSIONS.update({"ReduceMax": (1, 11, 12, 13, 18, 20), "ReduceMin": (1, 11, 12, 13, 18, 20),
                  "ReduceLogSum": (1, 11, 13, 18, 28), "ReduceLogSumExp": (1, 11, 13, 18, 28)})


@register(_VERSIONS)
def reduce(ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = attrs_of(node)
    axes = a.get("axes")
    if len(node.inputs) > 1 and node.inputs[1] is not None and node.inputs[1].name:
        axes = [int(v) for v in ctx.need_const(node.inputs[1], "reduction axes")]
    r = ctx.rank(x)
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return ctx.alias(y, ctx.blob(x), ctx.drop(x))
        axes = list(range(r))
    axes = sorted(int(v) % r for v in axes)
    if ctx.drop(x) and 0 in axes:
        axes.remove(0)  # a batch of 1: reducing it changes nothing
    keep = int(a.get("keepdims", 1))
    nax = [ctx.axis(x, ax) for ax in axes]
    ctx.add("Reduction", [ctx.blob(x)], [ctx.out(y, ctx.drop(x) if keep or ctx.rank(y) >= 2
                                                 else None)],
            {0: OPS[node.op_type], 1: 0, 2: 1.0, 3: nax, 4: keep, 5: 1})
