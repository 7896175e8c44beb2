"""Sequences and optionals.

An ONNX sequence is a Python list of tensors; sequence ops build new lists (never mutate one,
since a list may be shared, e.g. by a loop-carried value).  An optional is ``None`` or the value.
"""
from __future__ import annotations

import onnx_ir as ir

from ..emitter import Arg, Ctx, register


def _int_src(ctx: Ctx, arg: Arg) -> str:
    c = ctx.const(arg)
    if c is not None and c.size == 1:
        return str(int(c.reshape(()).item()))
    return f"int({arg})"


@register("SequenceEmpty", (11,))
def sequence_empty(ctx: Ctx, *, dtype=None):
    return "[]"


@register("SequenceConstruct", (11,))
def sequence_construct(ctx: Ctx, *inputs: Arg):
    return "[" + ", ".join(inputs) + "]"


@register("SequenceInsert", (11,))
def sequence_insert(ctx: Ctx, input_sequence: Arg, tensor: Arg, position: Arg = None):
    if position is None:
        return f"{input_sequence} + [{tensor}]"
    # slicing with a position in [-n, n] inserts exactly where ONNX does
    p = _int_src(ctx, position)
    if not p.lstrip("-").isdigit():
        pos = ctx.tmp("pos")
        ctx.line(f"{pos} = {p}")
        p = pos
    return f"{input_sequence}[:{p}] + [{tensor}] + {input_sequence}[{p}:]"


@register("SequenceAt", (11,))
def sequence_at(ctx: Ctx, input_sequence: Arg, position: Arg):
    return f"{input_sequence}[{_int_src(ctx, position)}]"


@register("SequenceErase", (11,))
def sequence_erase(ctx: Ctx, input_sequence: Arg, position: Arg = None):
    if position is None:
        return f"{input_sequence}[:-1]"
    p = _int_src(ctx, position)
    if p.isdigit():
        return f"{input_sequence}[:{p}] + {input_sequence}[{int(p) + 1}:]"
    pos = ctx.tmp("pos")
    ctx.line(f"{pos} = {p} % len({input_sequence})")
    return f"{input_sequence}[:{pos}] + {input_sequence}[{pos} + 1:]"


@register("SequenceLength", (11,))
def sequence_length(ctx: Ctx, input_sequence: Arg):
    return f"torch.tensor(len({input_sequence}), dtype=torch.int64)"


@register("ConcatFromSequence", (11,))
def concat_from_sequence(ctx: Ctx, input_sequence: Arg, *, axis, new_axis=0):
    fn = "torch.stack" if new_axis else "torch.cat"
    return f"{fn}({input_sequence}, {axis})" if axis else f"{fn}({input_sequence})"


@register("SplitToSequence", (11, 24))
def split_to_sequence(ctx: Ctx, input: Arg, split: Arg = None, *, axis=0, keepdims=1):
    dim = f", {axis}" if axis else ""
    if split is None:
        if keepdims:
            return f"list(torch.split({input}, 1{dim}))"
        return f"list(torch.unbind({input}{dim}))"
    c = ctx.const(split)
    if c is not None:
        sizes = str(int(c.item())) if c.ndim == 0 else ctx.lit([int(v) for v in c.reshape(-1)])
    elif ctx.rank(split) == 0:
        sizes = f"int({split})"
    elif ctx.rank(split) == 1:
        sizes = f"{split}.tolist()"
    else:
        sizes = f"({split}.tolist() if {split}.dim() else int({split}))"
    return f"list(torch.split({input}, {sizes}{dim}))"


_SEQ_PRODUCERS = {"SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase",
                  "SplitToSequence", "SequenceMap"}
# ops whose output type follows their inputs or subgraphs: it may be a sequence or optional
_PASS_THROUGH = {"If", "Loop", "Identity", "Optional", "OptionalGetElement"}


def _plain_tensor(arg: Arg) -> bool | None:
    """True when ``arg`` is surely a tensor, False when surely not, None when unknown.
    Inferred types of intermediate values are not trusted: the producer decides."""
    v = arg.value
    if v is None:
        return None
    if v.const_value is not None:
        return True
    p = v.producer()
    if p is None:  # a graph or subgraph input: its declared type
        if v.type is None:
            return None
        return isinstance(v.type, ir.TensorType)
    if p.op_type in _SEQ_PRODUCERS or p.op_type == "Optional":
        return False
    if p.op_type in _PASS_THROUGH or p.domain not in ("", "ai.onnx"):
        return None
    return True


@register("SequenceMap", (17,))
def sequence_map(ctx: Ctx, input_sequence: Arg, *additional_inputs: Arg, body):
    lists = list(ctx.out_names)
    for lst in lists:
        ctx.line(f"{lst} = []")
    i = ctx.tmp("i")
    ctx.line(f"for {i} in range(len({input_sequence})):")
    with ctx.indent():
        args = [f"{input_sequence}[{i}]"]
        for a in additional_inputs:
            tensor = _plain_tensor(a)
            if tensor is None:
                args.append(f"({a}[{i}] if isinstance({a}, list) else {a})")
            else:
                args.append(str(a) if tensor else f"{a}[{i}]")
        outs = ctx.subgraph(body, args)
        for lst, e in zip(lists, outs):
            ctx.line(f"{lst}.append({e})")
    return None


# ---- optionals: None or the value -------------------------------------------------------
@register("Optional", (15, 28))
def optional(ctx: Ctx, input: Arg = None, *, type=None):
    return "None" if input is None else str(input)


@register("OptionalHasElement", (15, 18, 28))
def optional_has_element(ctx: Ctx, input: Arg = None):
    if input is None:
        return "torch.tensor(False)"
    if _plain_tensor(input):
        return "torch.tensor(True)"  # a tensor or sequence always holds its element
    return f"torch.tensor({input} is not None)"


@register("OptionalGetElement", (15, 18, 28))
def optional_get_element(ctx: Ctx, input: Arg):
    return str(input)
