"""Printing the generated file from the code of each class.

The walker (codegen.py) leaves one :class:`Body` per module scope it wrote: the forward source
with the node of each line, the ``__init__`` lines and the state.  Here they become the file:
bodies that are the same code are one class (blocks that differ only in integers of
``__init__``, channel counts or strides, become one class with those integers as constructor
arguments), classes are named after the recorded classes, long ``nn.Sequential`` lines are
wrapped, dead locals are freed, and the line of every node in the written file is kept
(``line_of``, read by verify --locate).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import onnx_ir as ir

from .._version import __version__
from ..irutil import model_text
from .naming import RESERVED, Namer, camel, comment_safe, group_class_hint, sanitize


@dataclass(eq=False)
class Body:
    """One class's code, before identical ones are merged (see assemble())."""

    idx: int
    scope: Any  # tree.Scope, or None for a flat Model
    in_names: list[str]
    init_lines: list[str]
    forward_src: str
    line_nodes: list[str | None]  # node of each forward line
    state: dict[str, Any]
    cls: str = ""
    listed: bool = False  # takes its inputs as one list (forward(self, features))

    @property
    def ctor(self) -> str:
        return f"__cls{self.idx}__"


@dataclass
class Assembled:
    source: str
    state: dict[str, Any]  # state-dict key -> ir tensor or numpy array
    line_of: dict[str, int]  # node name -> line (1-based) of ``source`` that computes it
    classes: list[str]  # the classes written besides Model


def assemble(root: Body, bodies: list[Body], *, header: str, doc: str, helpers: dict[str, str],
             record: bool, tree: bool, prefix: tuple[str, ...] = ()) -> Assembled:
    """The file: ``header`` (comment lines), imports, the ``helpers`` (name -> source), one
    class per distinct body in ``bodies`` (identical blocks share one), children first, then
    ``class Model`` (``root``, docstring ``doc``) and ``load()``.  ``record``: forward() reports
    every node output (verify --locate), through a module-level hook when ``tree``.  ``prefix``:
    the wrapper's path that Model stands for (class docstrings name paths relative to it)."""
    cls_names = Namer(RESERVED | set(helpers) | {"Model", "load", "nn", "F"})
    order: list[tuple] = []  # (class name, first body, __init__ text, parameters)
    resolved: dict[int, str] = {}  # body -> constructor call

    def text_of(b: Body) -> tuple[str, str]:
        sub = lambda s: re.sub(r"__cls(\d+)__", lambda m: resolved[int(m.group(1))], s)
        return "\n".join(sub(ln) for ln in b.init_lines), b.forward_src

    # Blocks whose code differs only in the integers of __init__ (channel counts, strides
    # written out) are one class with those integers as constructor arguments.  Group
    # keys abstract the integers and the children's arguments; groups are written
    # deepest first (a group's key only names its children's groups).
    kids = {b.idx: [int(m) for m in re.findall(r"__cls(\d+)__", "\n".join(b.init_lines))]
            for b in bodies}
    height: dict[int, int] = {}
    gid: dict[int, int] = {}
    groups: dict[tuple, int] = {}
    members: list[list[Body]] = []
    for b in bodies:  # children are finished before their parents
        height[b.idx] = 1 + max((height[k] for k in kids[b.idx]), default=0)
        if b is root:
            continue
        text = re.sub(r"__cls(\d+)__", lambda m: f"__G{gid[int(m.group(1))]}__",
                      "\n".join(b.init_lines))
        key = (len(b.in_names), _positional(b), _INT.sub("#", text))
        g = groups.setdefault(key, len(members))
        if g == len(members):
            members.append([])
        members[g].append(b)
        gid[b.idx] = g
    hints = _class_hints(members)
    for g in sorted(range(len(members)),
                    key=lambda g: (max(height[b.idx] for b in members[g]), g)):
        mem = members[g]
        texts = [text_of(b)[0] for b in mem]
        distinct = list(dict.fromkeys(texts))
        name = f"__N{g}__"  # named below, in file order
        init_t, params, args = _parameterize(distinct)
        for b, t in zip(mem, texts):
            resolved[b.idx] = f"{name}({args[distinct.index(t)]})"
        order.append((g, mem, init_t, params))
    order.sort(key=lambda o: o[1][0].idx)
    # names in the order the classes are written: the first of several ConvNormAct classes
    # is ConvNormAct, the next ConvNormAct_1
    final: dict[str, str] = {}
    for g, mem, _, _ in order:
        name = cls_names.new(hints[g], "Block")
        name = name[0].upper() + name[1:]
        cls_names.taken.add(name)
        final[f"__N{g}__"] = name
        for b in mem:
            b.cls = name
    named = lambda text: re.sub(r"__N\d+__", lambda m: final[m.group()], text)
    order = [(final[f"__N{g}__"], mem, named(init_t), params) for g, mem, init_t, params in order]
    state = {}
    for k, v in root.state.items():
        state[k] = v
    init_text, forward_src = text_of(root)
    init_text = named(init_text)
    helpers_src = "\n\n".join(helpers[name].rstrip() for name in helpers)
    parts = [header, _IMPORTS_HELPERS if helpers_src else _IMPORTS]
    if helpers_src:
        parts.append(helpers_src + "\n")
    tree_record = record and tree
    if tree_record:
        parts.append(_RECORD_FN)
    lines_out: list = []  # (class name, body) in file order
    for name, mem, init_t, params in order:
        # the parameter names most instances have (a block fed the graph's input names its
        # parameter after it, the next ones x)
        b = max(mem, key=lambda m: sum(o.in_names == m.in_names for o in mem))
        fwd = b.forward_src
        cls = [f"class {name}(nn.Module):"]
        cls.append(f'    """{_class_doc(mem, len(prefix))}"""')
        cls.append("")
        cls += [f"    def __init__({', '.join(['self'] + params)}):",
                "        super().__init__()"]
        if init_t:
            cls.append("\n".join(_wrap("        " + ln) for ln in init_t.split("\n")))
        sig = ", ".join(["self"] + b.in_names)
        cls += ["", f"    def forward({sig}):", fwd]
        parts.append("\n".join(cls) + "\n")
        lines_out.append((name, b))
    sig = ", ".join(["self"] + root.in_names)
    body = "\n".join(_wrap("        " + ln) for ln in init_text.split("\n")) if init_text else ""
    cls = [
        "class Model(nn.Module):",
        f'    """{doc}"""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
    ]
    if body:
        cls.append(body)
    if record and not tree_record:
        cls += ["        self.recorder = None", "",
                "    def record(self, node, name, value):",
                "        if self.recorder is not None:",
                "            self.recorder(node, name, value)"]
    if tree_record:
        cls += ["", "    @property", "    def recorder(self):", "        return _RECORDER[0]",
                "", "    @recorder.setter", "    def recorder(self, fn):",
                "        _RECORDER[0] = fn"]
    cls += ["", f"    def forward({sig}):", forward_src]
    parts.append("\n".join(cls) + "\n")
    lines_out.append(("Model", root))
    parts.append(LOAD_SOURCE)
    source = parts[0] + "\n" + "\n\n\n".join(p.strip("\n") for p in parts[1:]) + "\n"
    return Assembled(source, state, _line_map(source, lines_out, bodies),
                     [o[0] for o in order])


def _positional(b: Body) -> str:
    """``b``'s forward with its parameters as placeholders: blocks that differ only in what
    they call their inputs are one class."""
    src = b.forward_src
    for i, name in enumerate(b.in_names):
        src = re.sub(rf"(?<![\w.]){re.escape(name)}\b", f"__in{i}__", src)
    return src


def _child_attrs(b: Body) -> list[str]:
    """The attributes a block's __init__ sets, as a reader names them (``downsample_0_folded``
    -> ``downsample``)."""
    out = []
    for line in b.init_lines:
        m = re.match(r"\s*self\.(\w+)\s*=", line)
        if m:
            name = re.sub(r"(_\d+)*$", "", m.group(1).replace("_folded", ""))
            if name and name not in out:
                out.append(name)
    return out


def _class_hints(members: list[list[Body]]) -> list[str]:
    """A class name for each group of blocks.  Groups that would share a name (no recorded
    class, the same list stem) are told apart by their first child that another of them lacks
    (``LayerBlock``, ``LayerBlockDownsample``), then by the namer's number."""
    hints = [group_class_hint([b.scope for b in mem if b.scope is not None] or [None])
             for mem in members]
    by_hint: dict[str, list[int]] = {}
    for g, h in enumerate(hints):
        by_hint.setdefault(h, []).append(g)
    for h, gs in by_hint.items():
        if len(gs) < 2 or members[gs[0]][0].scope is None or members[gs[0]][0].scope.cls:
            continue
        attrs = {g: _child_attrs(members[g][0]) for g in gs}
        for g in gs:
            extra = [a for a in attrs[g] if any(a not in attrs[o] for o in gs if o != g)]
            if extra:
                hints[g] = h + camel(extra[0])
    return hints


def node_texts(bodies: list[Body], node_name: str) -> list[str]:
    """The (stripped) lines written for a node, in every class."""
    out = []
    for b in bodies:
        for text, node in zip(b.forward_src.split("\n"), b.line_nodes):
            if node == node_name and text.strip():
                out.append(text.strip())
    return out


def tree_header(notes: list[str], tree: bool, untrusted: list[str], prefix: str = "") -> str:
    """Comment lines saying how the file is laid out: flat (and why) or the recorded tree,
    the wrapper ``prefix`` dropped from every key, and which state keys are not the original
    ones (``untrusted``)."""
    notes = list(notes)
    if tree:
        notes.append("Module tree as recorded by the exporter: state-dict keys are the "
                     "original parameter paths.")
        if prefix:
            notes.append(f"Without the prefix '{prefix}.' that every path had (the model was "
                         "exported inside a wrapper such as nn.DataParallel):")
            notes.append(f"load the wrapper's weights with load_state_dict({{k.removeprefix("
                         f"'{prefix}.'): v for k, v in sd.items()}}).")
            untrusted = [n.removeprefix(prefix + ".") for n in untrusted]
        names = sorted(set(untrusted))
        if names:
            notes.append(f"Except {len(names)}, named ..._folded: tensors the exporter "
                         "or converter transformed (BatchNorm folded into a conv,")
            notes.append("constant folding), which load_state_dict(original, strict=False) "
                         "leaves as converted:")
            for i in range(0, min(len(names), 12), 4):
                notes.append("  " + ", ".join(names[i:i + 4]) + (
                    "," if i + 4 < min(len(names), 12) else
                    f" and {len(names) - 12} more." if len(names) > 12 else "."))
    return "".join(f"# {comment_safe(n)}\n" for n in notes)


def _class_doc(members: list, skip: int = 0) -> str:
    # only sanitized, identifier-like text from the model goes into a docstring
    scope = members[0].scope
    paths = [".".join(sanitize(p, "m") if not p.isdigit() else p for p in b.scope.path[skip:])
             for b in members if b.scope is not None]
    where = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    if scope is not None and scope.cls:
        cls = ".".join(sanitize(p, "m") for p in str(scope.cls).split("."))
        return f"{cls}: {where}."
    return f"Module {where}."


_INT = re.compile(r"(?<![\w.])\d+(?![\w.])")
_KNOWN_ARGS = {
    "Conv": ["in_channels", "out_channels"], "ConvTranspose": ["in_channels", "out_channels"],
    "Linear": ["in_features", "out_features"], "BatchNorm": ["num_features"],
    "InstanceNorm": ["num_features"], "LayerNorm": ["normalized_shape"],
    "RMSNorm": ["normalized_shape"], "GroupNorm": ["num_groups", "num_channels"],
    "Embedding": ["num_embeddings", "embedding_dim"], "LSTM": ["input_size", "hidden_size"],
    "GRU": ["input_size", "hidden_size"], "RNN": ["input_size", "hidden_size"],
}


def _wrap(line: str, width: int = 100) -> str:
    """``self.x = nn.Sequential(A(...), B(...))`` one member a line when it is too long (and
    so on inside a member that is an ``nn.Sequential`` itself)."""
    m = re.match(r"(\s*self\.[\w.]+ = nn\.(?:Sequential\(|ModuleList\(\[))(.*)(\)|\]\))$", line)
    if len(line) <= width or m is None:
        return line
    indent = len(line) - len(line.lstrip())
    return m.group(1) + _members(m.group(2), indent + 4, width) + " " * indent + m.group(3)


def _members(text: str, indent: int, width: int) -> str:
    """The comma-separated members of a container call, one a line at ``indent``."""
    parts, depth, cur = [], 0, ""
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    parts.append(cur.strip())
    pad = " " * indent
    out = "\n"
    for p in parts:
        if len(pad) + len(p) + 1 > width and p.startswith("nn.Sequential(") and p.endswith(")"):
            p = "nn.Sequential(" + _members(p[len("nn.Sequential("):-1], indent + 4, width) \
                + pad + ")"
        out += f"{pad}{p},\n"
    return out


def _parameterize(texts: list[str]) -> tuple[str, list[str], list[str]]:
    """(__init__ text, parameter names, constructor arguments of each text) for __init__
    texts that differ only in integer literals: each differing literal becomes a parameter
    (one per distinct column of values), named after where it first appears."""
    if len(texts) == 1:
        return texts[0], [], [""]
    spans = [[(m.start(), m.end(), int(m.group())) for m in _INT.finditer(t)] for t in texts]
    n = len(spans[0])
    cols = [j for j in range(n) if len({sp[j][2] for sp in spans}) > 1]
    names = Namer(RESERVED | {"self"})
    by_sig: dict[tuple, tuple[str, str]] = {}  # column values -> (attribute, label)
    for j in cols:
        sig = tuple(sp[j][2] for sp in spans)
        if sig not in by_sig:
            by_sig[sig] = _arg_name(texts[0], spans[0][j][0])
    # ``in_channels`` rather than ``conv1_in_channels`` where the label alone is unambiguous
    labels = [label for _, label in by_sig.values()]
    final = {sig: names.new(label if labels.count(label) == 1 and not re.fullmatch(
        r"(arg|dim)\d*", label) else f"{attr}_{label}", "n")
        for sig, (attr, label) in by_sig.items()}
    col_name = {j: final[tuple(sp[j][2] for sp in spans)] for j in cols}
    out, last = [], 0
    for j in cols:
        start, end, _ = spans[0][j]
        out.append(texts[0][last:start])
        out.append(col_name[j])
        last = end
    out.append(texts[0][last:])
    params = list(dict.fromkeys(col_name[j] for j in cols))
    args = []
    for sp in spans:
        vals = {}
        for j in cols:
            vals.setdefault(col_name[j], sp[j][2])
        args.append(", ".join(f"{p}={vals[p]}" for p in params))
    return "".join(out), params, args


def _arg_name(text: str, pos: int) -> tuple[str, str]:
    """What the integer at ``pos`` of an __init__ line is: the attribute and the argument it
    is passed as (``("conv1", "out_channels")``, ``("pos_embed", "dim1")``)."""
    start = text.rfind("\n", 0, pos) + 1
    line = text[start:pos]
    m = re.match(r"\s*self\.([\w.]+)\s*=|\s*self\.(?:[\w.]+\.)?register_buffer\('(\w+)'", line)
    attr = (m.group(1) or m.group(2)).replace(".", "_") if m else "arg"
    attr = attr.replace("_folded", "")
    stack: list[list] = []  # [callee, positional index, keyword, open char]
    i = 0
    while i < len(line):
        c = line[i]
        if c in "([":
            callee = re.search(r"([\w.]*)$", line[:i]).group(1)
            stack.append([callee, 0, None, c])
        elif c in ")]" and stack:
            stack.pop()
        elif c == "," and stack:
            stack[-1][1] += 1
            stack[-1][2] = None
        elif c == "=" and stack and line[i + 1:i + 2] != "=":
            kw = re.search(r"(\w+)\s*$", line[:i])
            if kw:
                stack[-1][2] = kw.group(1)
        i += 1
    label = "arg"
    for callee, idx, kw, ch in reversed(stack):
        if kw:
            label = kw
            break
        if ch == "[":
            label = f"dim{idx}"
            break
        if callee:
            base = re.sub(r"\d*d$", "", callee.rsplit(".", 1)[-1])
            known = _KNOWN_ARGS.get(base, [])
            label = known[idx] if idx < len(known) else f"arg{idx}"
            break
    return attr, label


def _line_map(source: str, classes: list, bodies: list) -> dict[str, int]:
    """node name -> 1-based line of ``source`` whose code computes it (a block written once
    for many instances maps every instance's nodes to the class's lines)."""
    lines = source.split("\n")
    starts = {}
    for i, line in enumerate(lines):
        m = re.match(r"class (\w+)\(nn\.Module\):", line)
        if m:
            starts[m.group(1)] = i
    out: dict[str, int] = {}
    for b in bodies:
        name = b.cls or "Model"
        start = starts.get(name)
        if start is None:
            continue
        # forward's first line
        try:
            fwd = next(i for i in range(start, len(lines))
                       if lines[i].lstrip().startswith("def forward(")) + 1
        except StopIteration:
            continue
        for j, node in enumerate(b.line_nodes):
            if node is not None and node not in out:
                out[node] = fwd + j + 1
    return out


def free_dead_locals(forward_src: str, nodes: list | None = None) -> tuple[str, list]:
    """Add ``del a, b`` after the top-level statement of ``forward`` that uses a local for the
    last time, as a hand-written forward that rebinds ``x`` frees it: otherwise every
    intermediate tensor lives until forward returns (more memory, and fresh pages to fault in
    for every activation of every call).  Only names that a top-level assignment binds are
    deleted, after their last mention anywhere (nested blocks included).  ``nodes`` (the node of
    each line) is returned with the inserted lines' entries (None) added."""
    import ast

    lines = forward_src.split("\n")
    if nodes is None or len(nodes) != len(lines):
        nodes = [None] * len(lines)
    try:
        tree = ast.parse("class _C:\n    def _f(self):\n" + forward_src)
    except SyntaxError:
        return forward_src, nodes  # not ours to judge here; compile() reports it
    body = tree.body[0].body[0].body
    if any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
           for stmt in body for n in ast.walk(stmt)):
        return forward_src, nodes  # a closure could read a local after its last mention
    bound: set[str] = set()
    last: dict[str, int] = {}
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
                bound.update(e.id for e in elts if isinstance(e, ast.Name))
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name):
                last[node.id] = i
    dead: dict[int, list[str]] = {}
    for name, i in last.items():
        if name in bound and i < len(body) - 1 and not isinstance(body[i], ast.Return):
            dead.setdefault(i, []).append(name)
    if not dead:
        return forward_src, nodes
    after = {body[i].end_lineno - 3: names for i, names in dead.items()}  # 0-based line
    out, out_nodes = [], []
    for j, line in enumerate(lines):
        out.append(line)
        out_nodes.append(nodes[j])
        if j in after:
            out.append("        del " + ", ".join(sorted(after[j], key=lambda n: last[n])))
            out_nodes.append(None)
    return "\n".join(out), out_nodes


def file_header(model: ir.Model, source_name: str) -> str:
    producer = " ".join(filter(None, [model_text(model.producer_name),
                                      model_text(model.producer_version)]))
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(model.opset_imports.items()))
    lines = [f"# Generated by nnport {__version__} from {comment_safe(source_name)}.",
             f"# ONNX IR version {model.ir_version}, opsets: {comment_safe(opsets)}."]
    if producer:
        lines.append(f"# Producer: {comment_safe(producer)}.")
    return "\n".join(lines) + "\n"


def model_doc(model: ir.Model) -> str:
    # Model-controlled text never goes into the docstring (only into sanitized comments).
    graph = sanitize(model.graph.name or "graph", "graph")
    return f"PyTorch port of the ONNX graph {graph}, generated by nnport."


_IMPORTS = """import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
"""

_IMPORTS_HELPERS = """import math
import os
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
"""

_RECORD_FN = '''_RECORDER = [None]


def _record(node, name, value):
    if _RECORDER[0] is not None:
        _RECORDER[0](node, name, value)
'''

LOAD_SOURCE = '''def load(weights=None):
    """Build the model and load its weights (by default the .safetensors file beside this one)."""
    if weights is None:
        weights = os.path.splitext(os.path.abspath(__file__))[0] + ".safetensors"
    with torch.device("meta"):
        model = Model()
    model.load_state_dict(load_file(weights), assign=True)
    return model.eval()
'''
