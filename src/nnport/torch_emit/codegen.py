"""ONNX graph (onnx_ir) -> readable, standalone PyTorch source: the graph walker.

The generated file follows the contract in DESIGN.md: ``class Model(nn.Module)``, ``load()``,
forward takes the graph inputs in order and returns one tensor or a tuple in output order, and it
imports only torch, safetensors and the standard library.

:class:`CodeGen` walks the graph, in the module tree the exporter recorded (tree.py) or flat, and
calls one emitter per node (the API they are written against is emitter.py); it keeps what each
class being written has bound (locals, constants, tracked shape values) and hands the finished
classes to the assembler.  The rest of the job lives beside it:
- naming.py: identifiers, literals and comments spelled from model text;
- placement.py: where a module or tensor goes in the tree, its state-dict key, trainability;
- symbolic.py: shape arithmetic kept as Python ints, materialized as tensors where needed;
- assemble.py: the file printed from the classes (identical blocks written once, line map).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import onnx_ir as ir

from ..dtypes import COMPUTE_AS, compute_dtype, torch_dtype_name, torch_dtype_src
from ..errors import ConversionError, InputError, NnportError, UnsupportedOpsError
from ..io import attribute_types
from ..irutil import tensor_array
from ..registry import Registry, norm_domain, py_attr_name
from . import helpers as _helpers
from .assemble import (Body, assemble, file_header, free_dead_locals, model_doc, node_texts,
                       tree_header)
from .emitter import (REGISTRY, Arg, Ctx, Transposed, iter_nodes, model_opsets, node_label,
                      preflight, register)
from .naming import TS_REPEAT, Namer, py_literal, sanitize, short_hint
from .placement import Placement, Submodule, Weight, leaf_path, learnable, rewritten_user
from .symbolic import materialize, try_symbolic

# local names for the outputs of nnport's fused nodes (passes/torch) outside a named module;
# the value keeps the name of the last node it replaced (attention's output was "matmul")
_FUSED_HINTS = {"Gelu": "gelu", "Silu": "silu", "Mish": "mish", "HardSwish": "hardswish"}


def _is_sdpa(node: ir.Node | None) -> bool:
    return node is not None and node.domain == "nnport" and node.op_type == "SDPA"

# re-exported: where tests and emitters written before the split import them from
__all__ = ["CodeGen", "REGISTRY", "register", "Arg", "Ctx", "Transposed", "iter_nodes",
           "learnable", "preflight", "model_opsets", "node_label", "py_literal", "sanitize",
           "Namer"]


@dataclass
class Line:
    """One line of the forward being written, with the node it computes (for the line map)."""

    indent: int
    text: str
    node: str | None = None


def _attr_value(attr: ir.Attr) -> Any:
    t = attr.type
    A = ir.AttributeType
    if t == A.STRING:
        v = attr.value
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    if t == A.STRINGS:
        return [s.decode("utf-8", "replace") if isinstance(s, bytes) else s for s in attr.value]
    if t == A.TENSOR:
        return tensor_array(attr.value, attr.value.name or attr.name)
    if t == A.TENSORS:
        return [tensor_array(x, x.name or attr.name) for x in attr.value]
    if t in (A.INTS, A.FLOATS, A.GRAPHS):
        return list(attr.value)
    return attr.value


class CodeGen(Placement):
    """Walks one normalized graph and writes its PyTorch source (see generate())."""

    def __init__(self, model: ir.Model, *, source_name: str = "model.onnx",
                 registry: Registry = REGISTRY, record: bool = False, flat: bool = False,
                 control_flow: str = "if"):
        self.model = model
        # "cond": an If on a runtime value is torch.cond (op_control.py), except when recording
        # (a torch.cond branch cannot call the recorder)
        self.control_flow = "if" if record else control_flow
        # flat=False: one nn.Module class per module scope the exporter recorded (tree.py)
        self.flat = flat
        self.scope_path: tuple[str, ...] = ()  # module path of the class being written
        self.prefix: tuple[str, ...] = ()  # the wrapper attribute dropped from every path
        self.lists: dict[str, dict[int, tuple[str, dict]]] = {}  # ModuleList attr -> slots
        self.holders: list[str] = []  # dotted paths of plain nn.Module() holders
        self.tree_notes: list[str] = []  # comment lines of the file header (see note())
        self.untrusted: list[str] = []  # generated state keys of tensors the exporter changed
        self._tree = False
        self._bodies: list[Body] = []
        self._skip: set[int] = set()  # nodes a block's signature already computes
        self.classes: list[str] = []  # the classes written besides Model
        self.line_of: dict[str, int] = {}  # node name -> line (1-based) of the written file
        # record=True: after every node, forward() calls self.record(node_name, onnx_output_name,
        # value), which passes them to ``self.recorder`` when set (used by verify --locate).
        self.record = record
        self.registry = registry
        self.opsets = model_opsets(model)
        self.source_name = source_name
        self.attrs = Namer()  # module attribute names
        self.locals = Namer()  # forward() local names
        self.weights: dict[str, Weight] = {}
        self.const_attr: dict[int, str] = {}  # id(Value) -> placeholder attribute name
        self.pending: dict[str, ir.Value] = {}  # placeholder -> constant value
        # values tracked as Python int expressions (see symbolic.py):
        # id(Value) -> (list of exprs or one expr, dtype, device expr or None)
        self.syms: dict[int, tuple] = {}
        self.sym_ph: dict[str, tuple] = {}  # placeholder -> the same tuple
        self.bools: dict[int, list[bool]] = {}
        self.modules: dict[str, Submodule] = {}
        self.helpers: dict[str, str] = {}
        self.exprs: dict[int, str] = {}  # id(Value) -> expression
        self.lines: list[Line] = []
        self.indent = 2
        self._const_cache: dict[int, np.ndarray] = {}
        self._inits: dict[str, ir.Value] | None = None

    # ----- values ------------------------------------------------------------------------
    def const_array(self, value: ir.Value) -> np.ndarray | None:
        if value.const_value is None:
            return None
        key = id(value)
        if key not in self._const_cache:
            self._const_cache[key] = tensor_array(value.const_value, value.name)
        return self._const_cache[key]

    def expr_of(self, value: ir.Value, node: ir.Node | None) -> str:
        key = id(value)
        if key in self.exprs:
            return self.exprs[key]
        if value.const_value is not None:
            attr = self.const_attr.get(key)
            if attr is None:
                tensor = value.const_value
                dt = tensor.dtype
                if dt == ir.DataType.STRING:
                    # strings live in code, not in safetensors
                    expr = py_literal(self.const_array(value).tolist())
                    self.exprs[key] = expr
                    return expr
                # A placeholder: only constants the code ends up using get a name (and a
                # good one), in generate().
                attr = f"__c{len(self.const_attr)}__"
                self.const_attr[key] = attr
                self.pending[attr] = value
            return f"self.{attr}"
        where = f" used by {node_label(node)}" if node is not None else ""
        raise ConversionError(f"tensor {value.name!r}{where} is not produced by any node "
                              "and is not a graph input or initializer")

    def set_sym(self, value: ir.Value, sym, dtype: ir.DataType, device: str | None) -> None:
        """Track ``value`` as Python expressions; it becomes a tensor only where code needs one."""
        rec = (sym, dtype, device)
        self.syms[id(value)] = rec
        ph = f"__s{len(self.sym_ph)}__"
        self.sym_ph[ph] = rec
        self.bind(value, ph)

    def note(self, text: str) -> None:
        """A line for the file header (once)."""
        if text not in self.tree_notes:
            self.tree_notes.append(text)

    def add_helper(self, name: str) -> str:
        if name not in self.helpers:
            self.helpers[name], needs = _helpers.source(name)
            for dep in needs:
                self.add_helper(dep)
        return name

    def emit(self, text: str, node: ir.Node | None = None) -> None:
        label = node.name if node is not None else None
        for part in text.split("\n"):
            self.lines.append(Line(self.indent, part, label))

    # ----- graph walking -----------------------------------------------------------------
    def bind(self, value: ir.Value, expr: str) -> None:
        self.exprs[id(value)] = expr

    def emit_nodes(self, graph: ir.Graph) -> None:
        for node in graph:
            self.emit_node(node)

    def emit_subgraph(self, graph: ir.Graph, inputs: Sequence[str]) -> list[str]:
        for value, expr in zip(graph.inputs, inputs):
            if expr is not None:
                self.bind(value, expr)
        self.emit_nodes(graph)
        return [self.expr_of(v, None) for v in graph.outputs]

    def emit_node(self, node: ir.Node) -> None:
        dom = norm_domain(node.domain)
        opset = self.opsets.get(dom, 1)
        em = self.registry.lookup(dom, node.op_type, opset)
        if em is None:
            raise UnsupportedOpsError("torch", [{"domain": dom, "op_type": node.op_type,
                                                 "opset": opset, "node": node.name}])
        args: list[Arg | None] = []
        for v in node.inputs:
            if v is None or (v.name == "" and v.producer() is None and v.const_value is None):
                args.append(None)
            else:
                args.append(Arg(self.expr_of(v, node), v))
        # trailing missing optional inputs are simply not passed
        while args and args[-1] is None:
            args.pop()
        kwargs = {}
        for name, attr in node.attributes.items():
            if attr.is_ref():
                raise ConversionError(f"{node_label(node)}: attribute {name!r} refers to a "
                                      "function attribute outside a function")
            want = attribute_types(node.op_type, dom, opset).get(name)
            if want is not None and want != int(attr.type):
                raise InputError(f"{node_label(node)}: attribute {name!r} is "
                                 f"{attr.type.name}, ONNX's {node.op_type} takes "
                                 f"{ir.AttributeType(want).name}")
            pname = py_attr_name(name)
            if pname not in em.attr_names and not em.any_attrs:
                raise ConversionError(
                    f"{node_label(node)}: attribute {name!r} is not supported by the "
                    f"{node.op_type} converter (opset {opset})")
            kwargs[pname] = _attr_value(attr)
        if not em.variadic and len(args) > em.n_positional:
            raise ConversionError(f"{node_label(node)}: {len(args)} inputs given, the "
                                  f"{node.op_type} converter takes at most {em.n_positional}")
        out_names = []
        for i, out in enumerate(node.outputs):
            hint = out.name or f"{node.op_type.lower()}_{i}"
            if self._tree:
                out_names.append(self.locals.new(self._value_hint(out), "v"))
            else:
                out_names.append(self.locals.new(short_hint(hint, node), "v"))
        ctx = Ctx(self, node, opset, out_names)
        if try_symbolic(ctx, args, kwargs):
            self._record(node, [self.exprs[id(o)] for o in node.outputs])
            return
        try:
            result = em.fn(ctx, *args, **kwargs)
        except NnportError:
            raise
        except Exception as exc:
            raise ConversionError(f"{node_label(node)}: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())}") from exc
        if result is None:
            pass
        elif isinstance(result, str):
            n_used = len(node.outputs)
            if n_used == 1:
                self.emit(f"{out_names[0]} = {result}", node)
            else:
                targets = ", ".join(
                    out_names[i] if out.uses() or out.is_graph_output() else "_"
                    for i, out in enumerate(node.outputs))
                self.emit(f"{targets} = {result}", node)
        else:
            for i, expr in enumerate(list(result)[: len(node.outputs)]):
                if expr is None:
                    out_names[i] = "None"
                else:
                    self.emit(f"{out_names[i]} = {expr}", node)
        for out, name in zip(node.outputs, out_names):
            self.bind(out, name)
        self._record(node, out_names)

    def _record(self, node: ir.Node, names: list[str]) -> None:
        if self.record:
            for out, name in zip(node.outputs, names):
                if out.name and name != "None":
                    fn = "_record" if self._tree else "self.record"
                    self.emit(f"{fn}({node.name!r}, {out.name!r}, {name})", node)

    # ----- the file ----------------------------------------------------------------------
    def generate(self) -> tuple[str, dict[str, Any]]:
        """Return (source, state) where state maps state_dict keys to ir/numpy tensors."""
        graph = self.model.graph
        root = None
        if not self.flat:
            from .tree import build, wrapped

            root, why = build(graph)
            if root is None:
                self.tree_notes.append(f"Flat code: {why}.")
            elif wrapped(root) is not None:
                # the model inside a wrapper is Model: paths (and so keys) are relative to it
                root = wrapped(root)
                self.scope_path = self.prefix = root.path
        self._tree = root is not None
        in_names = []
        for v in graph.inputs:
            name = self.locals.new(v.name or "input", "x")
            in_names.append(name)
            self.bind(v, name)
            if v.dtype in COMPUTE_AS:
                self.emit(f"{name} = {name}.to({torch_dtype_src(v.dtype)})")
        self._n_nodes = sum(1 for _ in graph)
        self._done = 0
        self._bodies: list[Body] = []
        if root is None:
            for node in graph:
                self._emit_one(node)
        else:
            self._emit_items(root)
        outs = [self.expr_of(v, None) for v in graph.outputs]
        outs = [f"{e}.to(torch.{torch_dtype_name(v.dtype)})" if v.dtype in COMPUTE_AS else e
                for e, v in zip(outs, graph.outputs)]
        if len(outs) == 1:
            self.emit(f"return {outs[0]}")
        else:
            self.emit(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        body = self._finish_body(in_names, root)
        header = file_header(self.model, self.source_name) + tree_header(
            self.tree_notes, self._tree, self.untrusted, ".".join(self.prefix))
        out = assemble(body, self._bodies, header=header, doc=model_doc(self.model),
                       helpers=self.helpers, record=self.record, tree=self._tree,
                       prefix=self.prefix)
        self.line_of, self.classes = out.line_of, out.classes
        return out.source, out.state

    def _emit_one(self, node: ir.Node) -> None:
        from .. import progress

        self.emit_node(node)
        self._done += 1
        progress.update("generating PyTorch code", self._done, self._n_nodes)

    # ----- module tree -------------------------------------------------------------------
    _SCOPED = ("attrs", "locals", "weights", "modules", "lines", "const_attr", "pending",
               "exprs", "indent", "lists", "scope_path", "holders")

    def _enter(self, path: tuple[str, ...]) -> dict:
        saved = {k: getattr(self, k) for k in self._SCOPED}
        saved["_untrusted"] = len(self.untrusted)
        saved["_bodies"] = len(self._bodies)
        self.attrs, self.locals = Namer(), Namer()
        self.weights, self.modules, self.lists, self.holders = {}, {}, {}, []
        self.lines, self.const_attr, self.pending, self.exprs = [], {}, {}, {}
        self.indent, self.scope_path = 2, path
        return saved

    def _leave(self, saved: dict, discard: bool = False) -> None:
        if discard:
            del self.untrusted[saved["_untrusted"]:]
            del self._bodies[saved["_bodies"]:]
        for k in self._SCOPED:
            setattr(self, k, saved[k])

    def _emit_items(self, scope) -> None:
        for item in scope.items:
            if isinstance(item, ir.Node):
                if id(item) not in self._skip:
                    self._emit_one(item)
            else:
                self._emit_child(item)

    def _is_sym(self, value: ir.Value) -> bool:
        return bool(self.syms.get(id(value))) or id(value) in self.bools

    def _emit_child(self, child) -> None:
        """A child scope: a call of its own class where its boundary is clean, else its nodes
        written here (merged upward)."""
        from .tree import boundary, is_container

        if is_container(child):
            if child.children and not any(isinstance(i, ir.Node) for i in child.items):
                if not self._emit_sequential(child):
                    for c in child.children:
                        self._emit_child(c)
            else:
                self._emit_items(child)
            return
        ins, outs = boundary(child, self.model.graph)
        body = None
        if outs and not any(self._is_sym(v) for v in ins):
            body = self._emit_class(child, ins, outs)
        if body is None:
            self._emit_items(child)
            return
        target = self._child_slot(child.path[len(self.scope_path):], body.ctor, body.state)
        self._emit_call(target, ins, outs, child, listed=body.listed)

    def _emit_class(self, scope, ins, outs):
        saved = self._enter(scope.path)
        params = []
        cat = _leading_cat(scope, ins)
        if cat is not None:
            # a block that starts by concatenating everything it is given (DenseNet's layers,
            # each given one feature more than the last) takes them as one list: one class
            name = self.locals.new("features", "x")
            params.append(f"{name}: list[torch.Tensor]")
            out = self.locals.new(self._value_hint(cat.outputs[0]), "v")
            self.emit(f"{out} = torch.cat({name}, dim={cat.attributes['axis'].as_int()})", cat)
            self.bind(cat.outputs[0], out)
            self._record(cat, [out])
            self._skip.add(id(cat))
        for i, v in enumerate(ins if cat is None else ()):
            # the graph's own inputs keep their names; others are x, x1, ... (not named after
            # their producer, which differs from one instance of a block to the next)
            hint = (v.name or "x") if v.is_graph_input() else (f"x{i}" if i else "x")
            name = self.locals.new(hint, "x")
            params.append(name)
            self.bind(v, name)
        self._emit_items(scope)
        if any(self._is_sym(v) for v in outs):
            self._leave(saved, discard=True)
            if cat is not None:
                self._skip.discard(id(cat))  # written inline after all
            return None
        rets = [self.expr_of(v, None) for v in outs]
        self.emit(f"return {rets[0]}" if len(rets) == 1 else f"return {', '.join(rets)}")
        body = self._finish_body(params, scope)
        body.listed = cat is not None
        self._leave(saved)
        return body

    def _emit_sequential(self, cont) -> bool:
        """A numbered container whose members feed one another: ``nn.Sequential``."""
        from .tree import boundary

        ins, outs = boundary(cont, self.model.graph)
        got = self._sequential(cont, ins, outs)
        if got is None:
            return False
        target = self._child_slot(cont.path[len(self.scope_path):], *got)
        self._emit_call(target, ins, outs, cont)
        return True

    def _sequential(self, cont, ins, outs) -> tuple[str, dict] | None:
        """(constructor, state) of ``nn.Sequential(...)`` for ``cont``, or None.  A member that
        is itself such a container (timm's ``blocks.1.0``: stages of blocks) is a nested
        ``nn.Sequential``, so its members keep their keys (``blocks.1.0.conv_pw.weight``)."""
        from .tree import boundary, is_container

        if len(ins) != 1 or len(outs) != 1 or self._is_sym(ins[0]):
            return None
        prev = ins[0]
        plan = []
        for c in cont.children:
            cin, cout = boundary(c, self.model.graph)
            if cin != [prev] or len(cout) != 1:
                return None
            plan.append((c, cin, cout))
            prev = cout[0]
        if prev is not outs[0]:
            return None
        mark = len(self._bodies), len(self.untrusted)
        parts = []
        for c, cin, cout in plan:
            got = None
            if is_container(c) and c.children and \
                    not any(isinstance(i, ir.Node) for i in c.items):
                got = self._sequential(c, cin, cout)
            if got is None:
                body = self._emit_class(c, cin, cout)
                if body is None:
                    del self._bodies[mark[0]:]
                    del self.untrusted[mark[1]:]
                    return None
                got = (body.ctor, body.state)
            parts.append(got)
        ctor = "nn.Sequential(" + ", ".join(p[0] for p in parts) + ")"
        state = {f"{i}.{k}": v for i, (_, st) in enumerate(parts) for k, v in st.items()}
        return ctor, state

    def _emit_call(self, target: str, ins, outs, scope, listed: bool = False) -> None:
        args = ", ".join(self.expr_of(v, None) for v in ins)
        if listed:
            args = f"[{args}]"
        names = [self.locals.new(self._value_hint(v), "v") for v in outs]
        self.emit(f"{', '.join(names)} = {target}({args})")
        for v, name in zip(outs, names):
            self.bind(v, name)

    def _value_hint(self, value: ir.Value) -> str:
        """A local name that does not depend on which instance of a block is written (so that
        identical blocks give identical code): the module the value comes from, relative to
        the class being written, else the op that made it.  Attention reads as written:
        its output is ``attn`` (the fused node carries the Softmax's scope, which is a module
        in timm's Swin) and its inputs are ``q``, ``k`` and ``v`` (the first use decides)."""
        node = value.producer()
        for user, index in value.uses():
            if _is_sdpa(user) and index < 3 and not value.is_graph_output():
                return "qkv"[index]
        if _is_sdpa(node):
            return "attn"
        leaf = leaf_path(node, self.scope_path) if node is not None else None
        if leaf:
            atoms = [a for a in leaf if not a.isdigit()] or list(leaf)
            return TS_REPEAT.sub("", atoms[-1])
        if node is not None and node.domain == "nnport" and node.op_type in _FUSED_HINTS:
            return _FUSED_HINTS[node.op_type]  # not the name of the last node it replaced
        name = value.name or ""
        if self.scope_path and node is not None and value.is_graph_output():
            name = node.op_type.lower()  # the graph's output name is one instance's only
        if name.startswith("/"):
            last = name.rstrip("/").rsplit("/", 1)[-1]
            last = re.sub(r"_output_\d+$", "", last)
            return TS_REPEAT.sub("", last).lower() or "v"
        if node is not None and value.is_graph_input() is False and name:
            return TS_REPEAT.sub("", name) or "v"
        return name or "x"

    def _finish_body(self, in_names: list[str], scope) -> Body:
        """The current class's code: forward source, __init__ lines and state."""
        forward_src = "\n".join("    " * ln.indent + ln.text for ln in self.lines)
        line_nodes = [ln.node for ln in self.lines]
        # tracked shape values that code uses as tensors become torch.tensor([...]) there
        for _ in range(64):
            new = re.sub(r"__s\d+__", lambda m: materialize(self.sym_ph[m.group(0)]),
                         forward_src)
            if new == forward_src:
                break
            forward_src = new
        # name only the constants the code actually refers to, in order of first use
        names = {}
        for ph in re.findall(r"self\.(__c\d+__)", forward_src):
            if ph not in names:
                value = self.pending[ph]
                tensor = value.const_value
                param = learnable(tensor)
                if self.flat or not self._tree:
                    attr = self.attrs.new(value.name or "const", "c")
                else:
                    attr = self._place(value.name or "const", {"": tensor},
                                       rewritten_user(value), "c", single=True, mark=param)
                names[ph] = attr
                self.weights[attr] = Weight(attr, tensor, tensor.dtype,
                                            tuple(tensor.shape.numpy()), parameter=param)
        if names:
            forward_src = re.sub(r"self\.(__c\d+__)", lambda m: "self." + names[m.group(1)],
                                 forward_src)
        forward_src, line_nodes = free_dead_locals(forward_src, line_nodes)
        used = set()
        for ref in re.findall(r"self\.([A-Za-z_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)", forward_src):
            parts = ref.split(".")
            used.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        init_lines, state = [f"self.{h} = nn.Module()" for h in self.holders], {}
        for attr, mod in self.modules.items():
            init_lines.append(f"self.{attr} = {mod.ctor}")
            for k, v in mod.tensors.items():
                state[f"{attr}.{k}"] = v
        for attr, slots in self.lists.items():
            if not slots:
                continue
            items = [slots[i][0] if i in slots else "nn.Identity()"
                     for i in range(max(slots) + 1)]
            init_lines.append(f"self.{attr} = nn.ModuleList([{', '.join(items)}])")
            for i, (_, tensors) in slots.items():
                for k, v in tensors.items():
                    state[f"{attr}.{i}.{k}"] = v
        for attr, w in self.weights.items():
            if attr not in used:
                continue
            if w.dtype in COMPUTE_AS:
                arr = w.value if isinstance(w.value, np.ndarray) else w.value.numpy()
                w.value = arr.astype(compute_dtype(w.dtype).numpy())
            shape = py_literal(list(w.shape))
            try:
                dt = torch_dtype_src(w.dtype)
            except KeyError:
                name = getattr(w.value, "name", None) or attr
                raise ConversionError(f"tensor {name!r}: element type {w.dtype.name} has no "
                                      "torch equivalent") from None
            empty = f"torch.empty({shape}, dtype={dt})"
            if w.parameter:
                init_lines.append(f"self.{attr} = nn.Parameter({empty})")
            else:
                owner, _, leaf = f"self.{attr}".rpartition(".")
                init_lines.append(f"{owner}.register_buffer({leaf!r}, {empty})")
            state[attr] = w.value
        body = Body(len(self._bodies), scope, in_names, init_lines, forward_src, line_nodes,
                     state)
        self._bodies.append(body)
        return body

    def node_texts(self, node_name: str) -> list[str]:
        """The (stripped) lines written for a node, in every class."""
        return node_texts(self._bodies, node_name)


def _leading_cat(scope, ins: list[ir.Value]) -> ir.Node | None:
    """The Concat a block begins with when it concatenates all of its inputs, in order, and
    reads them nowhere else; else None."""
    from .tree import scope_members

    first = scope.items[0] if scope.items else None
    if len(ins) < 2 or not isinstance(first, ir.Node) or first.op_type != "Concat" or \
            first.domain not in ("", "ai.onnx") or len(first.inputs) != len(ins) or \
            any(a is not b for a, b in zip(first.inputs, ins)):
        return None
    axis = first.attributes.get("axis")
    if axis is None or axis.type != ir.AttributeType.INT:
        return None
    members = scope_members(scope)
    for v in ins:
        if any(u.node in members and u.node is not first for u in v.uses()):
            return None
    return first
