"""The module tree an exporter recorded, recovered from an ONNX graph.

Where a node came from is read from what the exporters leave behind:
- the dynamo exporter: node metadata ``pkg.torch.onnx.name_scopes`` (the module paths from the
  root to the node, e.g. ``['', 'layer1', 'layer1.0', 'layer1.0.bn1', '<op>']``) and
  ``pkg.torch.onnx.class_hierarchy`` (the class of each, e.g. ``__main__.Bottleneck``);
- the TorchScript exporter: scoped node names, ``/layer1/layer1.0/conv1/Conv`` (a child of an
  ``nn.Sequential``/``nn.ModuleList`` is named ``<list>.<index>``).

:func:`build` turns them into a tree of :class:`Scope` s: each holds, in graph order, the nodes
computed directly in that module and its child scopes.  Modules from ``torch.nn`` (Conv2d,
LayerNorm, ReLU...) are leaves: their nodes belong to the module that calls them, and the code
generator names the ``nn.Conv2d`` it writes after them.  A child whose nodes are not contiguous
in the graph (values crossing its boundary in both directions, or its parent's ops interleaved)
is merged into its parent.  The code generator (codegen.py) writes one class per scope.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import onnx_ir as ir

from ..irutil import iter_nodes

_CONTAINERS = {"torch.nn.modules.container.Sequential", "torch.nn.modules.container.ModuleList",
               "torch.nn.modules.container.ModuleDict"}
_TS_REPEAT = re.compile(r"_\d+$")
# attributes under which wrappers hold the model they wrap: nn.DataParallel,
# DistributedDataParallel and FSDP (``module``), torch.compile (``_orig_mod``), Lightning-style
# and EMA wrappers (``model``)
WRAPPER_ATTRS = ("module", "model", "_orig_mod")


@dataclass(eq=False)
class Scope:
    path: tuple[str, ...]  # module path atoms from the root: ("layer1", "0")
    cls: str | None = None  # recorded class (qualified name), if any
    items: list = field(default_factory=list)  # ir.Node or Scope, in graph order
    parent: "Scope | None" = None

    @property
    def children(self) -> list["Scope"]:
        return [i for i in self.items if isinstance(i, Scope)]

    def nodes(self):
        """Every node of this scope and of its descendants, in order."""
        for item in self.items:
            if isinstance(item, Scope):
                yield from item.nodes()
            else:
                yield item

    @property
    def name(self) -> str:
        return ".".join(self.path)


def node_scope(node: ir.Node) -> tuple[tuple[str, ...], dict] | None:
    """(module path atoms, {path atoms: class}) recorded for a node, or None."""
    md = node.metadata_props
    scopes = md.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            names = ast.literal_eval(scopes)
            classes = ast.literal_eval(md.get("pkg.torch.onnx.class_hierarchy", "[]"))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        if not isinstance(classes, list) or len(classes) != len(names):
            classes = [None] * len(names)
        # the last entry is the op itself, the first the root module ('')
        mods = [(n, c) for n, c in zip(names[:-1], classes[:-1]) if n]
        if not mods:
            return (), {(): classes[0] if classes and isinstance(classes[0], str) else None}
        cls = {tuple(n.split(".")): c for n, c in mods if isinstance(c, str)}
        path = tuple(mods[-1][0].split("."))
        return _fused_owner(node, path) or path, cls
    name = node.name or ""
    if name.startswith("/") and len(name) > 1:
        comps = [c for c in name.split("/")[1:-1] if c]
        atoms: list[str] = []
        prev = None
        for comp in comps:
            rest = comp[len(prev) + 1:] if prev and comp.startswith(prev + ".") else comp
            atoms.extend(a for a in rest.split(".") if a)
            prev = comp
        return tuple(atoms), {}
    return None


def _fused_owner(node: ir.Node, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where a node the exporter's optimizer fused belongs.  onnxscript's FuseBatchNormIntoConv
    gives the new Conv the BatchNorm's record (``stem.bn``) while its weight keeps the conv's
    parameter path (``stem.conv.weight``); written in the BatchNorm's scope, timm's
    ``BatchNormAct2d`` class would hold the convolution.  The node goes to the module owning its
    weight when that module is a sibling branch of the recorded one (``stem.conv``)."""
    if "Fuse" not in node.metadata_props.get("pkg.onnxscript.rewriter.rule_name", ""):
        return None
    w = node.inputs[1] if len(node.inputs) > 1 else None
    if w is None or not w.name or not w.name.endswith(".weight"):
        return None
    owner = tuple(w.name[:-len(".weight")].split("."))
    parent = owner[:-1]
    if not all(owner) or owner == path or len(path) <= len(parent) or \
            path[:len(parent)] != parent:
        return None
    return owner


def build(graph: ir.Graph) -> tuple[Scope | None, str]:
    """The scope tree of ``graph``, or (None, why) when it records none worth using."""
    nodes = list(graph)
    if not nodes:
        return None, "the graph has no nodes"
    paths: dict[ir.Node, tuple[str, ...] | None] = {}
    classes: dict[tuple[str, ...], str] = {}
    scoped = 0
    for node in nodes:
        rec = node_scope(node)
        if rec is None:
            paths[node] = None
            continue
        paths[node] = rec[0]
        scoped += bool(rec[0]) or node.metadata_props.get("pkg.torch.onnx.name_scopes") is not None
        for k, v in rec[1].items():
            classes.setdefault(k, v)
    if scoped < max(1, len(nodes) // 2) or not any(paths.values()):
        return None, "the graph records no module scopes"
    _fill_unscoped(nodes, paths)
    root = Scope((), classes.get(()))
    index: dict[tuple[str, ...], Scope] = {(): root}
    for node in nodes:
        path = paths[node] or ()
        scope = root
        for i in range(1, len(path) + 1):
            key = path[:i]
            child = index.get(key)
            if child is None or child.parent is not scope or scope.items[-1] is not child:
                new = Scope(key, classes.get(key), parent=scope)
                if child is not None:
                    # met again after other work of its parent: not one clean block
                    child.split = new.split = True  # type: ignore[attr-defined]
                index[key] = new
                scope.items.append(new)
                child = new
            scope = child
        scope.items.append(node)
    _merge_interleaved(root)
    _merge_layer_subclasses(root)
    _collapse(root)
    return root, ""


# ops the code generator writes as a torch.nn layer (nn.Conv2d, nn.BatchNorm2d, nn.Linear...)
# holding the tensors it reads, and the names those tensors have in such a layer
_LAYER_OPS = {"Conv", "ConvTranspose", "BatchNormalization", "LayerNormalization",
              "GroupNormalization", "InstanceNormalization", "RMSNormalization", "Gemm",
              "MatMul", "Gather", "LSTM", "GRU", "RNN", "LayerNorm", "RMSNorm", "Linear"}
_LAYER_TENSORS = ("weight", "bias", "running_mean", "running_var")


def _merge_layer_subclasses(scope: Scope) -> None:
    """A module that subclasses a torch.nn layer (timm's ``LayerNorm2d(nn.LayerNorm)``,
    ``BatchNormAct2d(nn.BatchNorm2d)``) holds that layer's tensors itself
    (``norm1.weight``).  A class written for it could keep those keys only by subclassing the
    layer too, so it merges into its parent, which holds the layer as ``self.norm1 =
    nn.BatchNorm2d(...)`` under the original keys and runs the rest of its ops (the
    activation after the norm) inline."""
    for child in scope.children:
        _merge_layer_subclasses(child)
    new = []
    for item in scope.items:
        if isinstance(item, Scope) and _owns_layer(item):
            new.extend(item.items)
            for sub in item.children:
                sub.parent = scope
        else:
            new.append(item)
    scope.items = new


def _owns_layer(scope: Scope) -> bool:
    """``scope`` computes a torch.nn layer op on tensors named after its own path, and is not
    that layer itself: its class is recorded and is not torch.nn's, or (TorchScript records
    no classes) it does more than the one op."""
    if is_leaf_class(scope.cls) and (scope.cls is not None or (
            not scope.children and len(scope.items) == 1)):
        return False  # the layer itself: _collapse joins it to its parent
    own = {f"{scope.name}.{t}" for t in _LAYER_TENSORS}
    return any(isinstance(item, ir.Node) and item.op_type in _LAYER_OPS
               and any(v is not None and v.name in own for v in item.inputs)
               for item in scope.items)


def _fill_unscoped(nodes: list[ir.Node], paths: dict) -> None:
    """Nodes with no recorded scope (made by a rewrite) take the deepest scope shared by the
    nodes they read from and the nodes that read them."""
    for node in nodes:
        if paths[node] is not None:
            continue
        near = []
        for v in node.inputs:
            p = v.producer() if v is not None else None
            if p is not None and paths.get(p) is not None:
                near.append(paths[p])
        for out in node.outputs:
            for use in out.uses():
                u = use.node if hasattr(use, "node") else use[0]
                if paths.get(u) is not None:
                    near.append(paths[u])
        paths[node] = _common(near) if near else ()


def _common(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    out = paths[0]
    for p in paths[1:]:
        n = 0
        while n < min(len(out), len(p)) and out[n] == p[n]:
            n += 1
        out = out[:n]
    return out


def is_leaf_class(cls: str | None) -> bool:
    return cls is None or (cls.startswith("torch.nn.modules.") and cls not in _CONTAINERS)


def _collapse(scope: Scope) -> bool:
    """torch.nn leaves (and, without class records, childless scopes) join their parent, and so
    do containers (nn.Sequential...) of nothing but leaves: the parent holds those in an
    ``nn.ModuleList`` under the container's name.  True when ``scope`` itself joins its parent."""
    kids = scope.children
    if not kids:
        return is_leaf_class(scope.cls)
    flags = {id(c): _collapse(c) for c in kids}
    new = []
    for item in scope.items:
        if isinstance(item, Scope) and flags[id(item)]:
            new.extend(item.items)
        else:
            new.append(item)
    scope.items = new
    return (all(flags.values()) and all(_numbered(c, scope) for c in kids)
            and (scope.cls is None or scope.cls in _CONTAINERS))


def _numbered(child: Scope, parent: Scope) -> bool:
    """``child`` is ``parent``'s member number N (not a deeper descendant)."""
    return len(child.path) == len(parent.path) + 1 and child.path[-1].isdigit()


def _merge_interleaved(scope: Scope) -> None:
    """Children that are not one contiguous block of the graph merge into their parent."""
    changed = True
    while changed:
        changed = False
        new = []
        for item in scope.items:
            if isinstance(item, Scope) and getattr(item, "split", False):
                new.extend(item.items)
                changed = True
            else:
                new.append(item)
        scope.items = new
    for child in scope.children:
        _merge_interleaved(child)


def boundary(scope: Scope, graph: ir.Graph) -> tuple[list[ir.Value], list[ir.Value]]:
    """(inputs, outputs) of a scope: non-constant values it reads that are made outside it
    (graph inputs included, subgraph reads included), and values it makes that are read
    outside it or are graph outputs; each in order of first use."""
    members = scope_members(scope)
    inputs: list[ir.Value] = []
    seen = set()
    for node in scope.nodes():
        for n in [node] + [s for s, _ in _sub_nodes(node)]:
            for v in n.inputs:
                if v is None or id(v) in seen or v.const_value is not None:
                    continue
                p = v.producer()
                if p is not None and p in members:
                    continue
                if p is None and not v.is_graph_input():
                    continue  # a subgraph's own input: bound by its node
                seen.add(id(v))
                inputs.append(v)
    outputs = []
    graph_outs = {id(v) for v in graph.outputs}
    for node in scope.nodes():
        for out in node.outputs:
            if id(out) in graph_outs or any(_user(u) not in members for u in out.uses()):
                outputs.append(out)
    return inputs, outputs


def scope_members(scope: Scope) -> set[ir.Node]:
    """Every node of ``scope`` and of its descendants, the nodes of their subgraphs included."""
    members = set()
    for node in scope.nodes():
        members.add(node)
        members.update(sub for sub, _ in _sub_nodes(node))
    return members


def _user(use) -> ir.Node:
    return use.node if hasattr(use, "node") else use[0]


def _sub_nodes(node: ir.Node):
    for attr in node.attributes.values():
        if attr.type == ir.AttributeType.GRAPH:
            yield from iter_nodes(attr.value)
        elif attr.type == ir.AttributeType.GRAPHS:
            for g in attr.value:
                yield from iter_nodes(g)


def is_container(scope: Scope) -> bool:
    """An nn.Sequential / nn.ModuleList (recorded, or without records: only numbered children):
    no class of its own."""
    kids = scope.children
    if scope.cls is not None:
        return scope.cls in _CONTAINERS
    return bool(kids) and all(_numbered(c, scope) for c in kids)



def wrapped(root: Scope) -> Scope | None:
    """The model inside a wrapper: when everything the exporter recorded is inside one child
    module held as ``module``/``model``/``_orig_mod`` (every parameter path starts with that
    attribute) and that child is a model of its own (not an nn.Sequential), the child; else
    None.  The code generator writes it as ``Model`` with the prefix dropped from its keys."""
    if len(root.items) != 1 or not isinstance(root.items[0], Scope):
        return None
    child = root.items[0]
    if len(child.path) != 1 or child.path[0] not in WRAPPER_ATTRS or is_container(child):
        return None
    return child
