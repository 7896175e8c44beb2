"""Where a module or a tensor goes in the generated module tree, and under which name.

Emitters ask for ``nn.Conv2d(...)`` submodules and plain tensors by a hint (usually the
exporter's parameter path, ``layer1.0.conv1``).  In tree mode the answer decides the state-dict
keys: a name that is the exporter's path of every tensor it holds becomes that path relative to
the class being written (an attribute, a ``nn.ModuleList`` slot, or a path under plain
``nn.Module()`` holders), so ``load_state_dict(original.state_dict())`` fills it; a tensor the
exporter changed (BatchNorm folded into a conv, constant folding) never takes an original key.
Which tensors are trainable parameters (:func:`learnable`) is decided here too.

:class:`Placement` is a mixin of the code generator (codegen.CodeGen): it reads and fills the
generator's per-class tables (``attrs``, ``weights``, ``modules``, ``lists``, ``holders``,
``scope_path``, ``untrusted``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from .emitter import Transposed
from .naming import is_ident

# Float initializers become trainable nn.Parameters; everything else is a buffer.
_PARAM_TYPES = {ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16}
# tensors up to this many elements are read to tell a mask from a weight (see learnable())
_MASK_CHECK_ELEMS = 1 << 22


def learnable(tensor: Any) -> bool:
    """Whether a constant the code uses as a plain tensor is a trainable weight: floating,
    more than one element (a scalar is a constant, e.g. paddle2onnx's helper constants), and not
    a mask (non-finite values, or only 0 and one large negative value like -10000 / finfo.min).
    Integer and boolean tensors (indices, shapes, masks) are never parameters."""
    dt = ir.DataType.from_numpy(tensor.dtype) if isinstance(tensor, np.ndarray) else tensor.dtype
    if dt not in _PARAM_TYPES:
        return False
    shape = tensor.shape if isinstance(tensor, np.ndarray) else tuple(tensor.shape.numpy())
    size = int(np.prod(shape)) if len(shape) else 1
    if size <= 1:
        return False
    if size > _MASK_CHECK_ELEMS:
        return True
    try:
        arr = np.asarray(tensor if isinstance(tensor, np.ndarray) else tensor.numpy(),
                         dtype=np.float64)
    except Exception:  # unreadable data is reported where the code reads it
        return True
    if not np.isfinite(arr).all():
        return False
    low = arr.min()
    return not (low <= -1e4 and np.all((arr == 0) | (arr == low)))


@dataclass
class Weight:
    attr: str  # attribute name on the module (buffer/parameter)
    value: Any  # ir tensor or numpy array
    dtype: ir.DataType
    shape: tuple[int, ...]
    parameter: bool


@dataclass
class Submodule:
    attr: str
    ctor: str
    tensors: dict[str, Any]


_EXPORTER_T = re.compile(r"val_\d+|onnx::MatMul_\d+")


def rewritten_user(value: ir.Value) -> ir.Node | None:
    """A node using ``value`` whose tensors the exporter rewrote, if any (a constant placed
    for it is then named as folded, never under an original key)."""
    for use in value.uses():
        node = use.node if hasattr(use, "node") else use[0]
        if _rewritten(node):
            return node
    return None


def _rewritten(node: ir.Node | None) -> bool:
    """The exporter's optimizer fused other ops' tensors into this node's (BatchNorm into Conv)."""
    if node is None:
        return False
    return "Fuse" in node.metadata_props.get("pkg.onnxscript.rewriter.rule_name", "")


def leaf_path(node: ir.Node | None, scope_path: tuple[str, ...]) -> tuple[str, ...] | None:
    """The module path a node was recorded in, relative to the class being written."""
    if node is None:
        return None
    from .tree import node_scope

    rec = node_scope(node)
    if rec is None:
        return None
    path = rec[0]
    n = len(scope_path)
    if path[:n] != scope_path or len(path) <= n:
        return None
    return path[n:]


def _from_node_name(hint: str, node: ir.Node | None) -> bool:
    """Whether ``hint`` is the node's name made an identifier (Ctx.module_hint's fallback)."""
    return node is not None and bool(node.name) and \
        hint == node.name.strip("/").replace("/", "_")


class Placement:
    """Weights and submodules of the class being written (mixed into codegen.CodeGen)."""

    def add_weight(self, array: Any, hint: str, parameter: bool | None = None,
                   node: ir.Node | None = None) -> str:
        if isinstance(array, np.ndarray):
            dt = ir.DataType.from_numpy(array.dtype)
            shape = tuple(array.shape)
        else:
            dt = array.dtype
            shape = tuple(array.shape.numpy())
        param = dt in _PARAM_TYPES if parameter is None else parameter
        attr = self._place(hint, {"": array}, node, "w", single=True, mark=param)
        self.weights[attr] = Weight(attr, array, dt, shape, param)
        return f"self.{attr}"

    def add_module(self, hint: str, ctor: str, tensors: dict[str, Any],
                   node: ir.Node | None = None) -> str:
        tensors = {k: v for k, v in tensors.items() if v is not None}
        slot = self._place(hint, tensors, node, "m")
        if isinstance(slot, tuple):
            name, idx = slot
            self.lists[name][idx] = (ctor, tensors)
            return f"self.{name}[{idx}]"
        self.modules[slot] = Submodule(slot, ctor, tensors)
        return f"self.{slot}"

    # ----- where a module or tensor goes in the tree -----------------------------------------
    def _is_tensor(self, v: Any, name: str) -> bool:
        """Whether an emitter's tensor is the ONNX file's tensor ``name`` (same shape and data;
        a ``Transposed`` one: its base).  Emitters pass what they read, views and copies."""
        value = self._initializer(name)
        if value is None or value.const_value is None:
            return False
        if isinstance(v, Transposed):
            v = v.base
        if v is value.const_value or v is value:
            return True
        if isinstance(v, ir.Value):
            return False
        if not isinstance(v, np.ndarray):
            return getattr(v, "name", None) == name
        ref = self.const_array(value)
        return ref is not None and ref.shape == v.shape and ref.dtype == v.dtype and (
            ref is v or np.array_equal(ref, v))

    def _initializer(self, name: str) -> ir.Value | None:
        """The file's initializer ``name`` (the table is built on first use)."""
        if self._inits is None:
            self._inits = dict(self.model.graph.initializers)
        return self._inits.get(name)

    def _exporter_folded(self, name: str) -> bool:
        """The file's tensor ``name`` is a constant the exporter's optimizer computed (dynamo
        names it after a graph node, ``embedding_2``; onnxscript records ``folded_from``), not
        an original parameter."""
        value = self._initializer(name)
        return value is not None and \
            "pkg.onnxscript.optimizer.folded_from" in value.metadata_props

    def _slot(self, rel: tuple[str, ...], single: bool):
        """``rel`` as an attribute, a ModuleList slot (``name.3``) or a holder path
        (``embedding.weight``: ``self.embedding = nn.Module()`` holds it), or None."""
        if len(rel) == 1 and is_ident(rel[0]) and rel[0] not in self.attrs.taken:
            self.attrs.taken.add(rel[0])
            return rel[0]
        if not single and len(rel) == 2 and is_ident(rel[0]) and rel[1].isdigit():
            slots = self.lists.get(rel[0])
            if slots is None and rel[0] not in self.attrs.taken:
                self.attrs.taken.add(rel[0])
                slots = self.lists[rel[0]] = {}
            if slots is not None and int(rel[1]) not in slots:
                return rel[0], int(rel[1])
            return None
        if len(rel) >= 2 and all(is_ident(a) for a in rel):
            # plain nn.Module holders for the path's parents
            for i in range(1, len(rel)):
                head = ".".join(rel[:i])
                if head in self.holders:
                    continue
                if head in self.attrs.taken or head in self.lists:
                    return None
                self.attrs.taken.add(head)
                self.holders.append(head)
            name = ".".join(rel)
            if name in self.attrs.taken or name in self.holders:
                return None
            self.attrs.taken.add(name)
            return name
        return None

    def _linear_t(self, v: Any, tensors: dict, full, node: ir.Node | None) -> bool:
        """An nn.Linear weight that the exporter stored transposed for a MatMul under a name
        of its own (dynamo ``val_13``, TorchScript ``onnx::MatMul_123``): it is the original
        weight when the bias beside it is the original's."""
        if not isinstance(v, Transposed):
            return False
        name = getattr(v.base, "name", None) or ""
        if not _EXPORTER_T.fullmatch(name):
            return False
        if "bias" in tensors:
            return self._is_tensor(tensors["bias"], full("bias"))
        return self._bias_free_linear(name, full(""), node)

    def _bias_free_linear(self, name: str, hint: str, node: ir.Node | None) -> bool:
        """A bias-free nn.Linear (every q/k/v projection): the exporter's transposed weight
        ``name`` is used by this one MatMul, recorded inside a module of class Linear (dynamo
        records classes) or inside module ``hint`` (TorchScript names nodes by scope), and the
        file has no other tensor of that module that would say it was something else."""
        from .tree import node_scope

        if node is None or node.op_type not in ("MatMul", "Linear") or not hint:
            return False
        value = self._initializer(name)
        if value is None or len(value.uses()) != 1:
            return False
        rec = node_scope(node)
        if rec is None or not rec[0]:
            return False
        atoms, classes = rec
        if classes:  # dynamo records each module's class
            if not (classes.get(atoms) or "").rsplit(".", 1)[-1].endswith("Linear"):
                return False
        elif atoms != tuple(hint.split(".")):  # TorchScript: the node's scope is the name
            return False
        prefix = ".".join(atoms) + "."
        return not any(k.startswith(prefix) for k in self._inits or ())

    def _relative(self, dotted: str | None) -> tuple[str, ...] | None:
        """``dotted`` (a parameter path) relative to the class being written, or None."""
        if not dotted:
            return None
        atoms = tuple(dotted.split("."))
        n = len(self.scope_path)
        if atoms[:n] != self.scope_path or len(atoms) <= n:
            return None
        return atoms[n:]

    def _place(self, hint: str, tensors: dict[str, Any], node: ir.Node | None, default: str,
               single: bool = False, mark: bool = False):
        """The attribute (or ``(list, index)`` ModuleList slot) for a module or tensor named
        ``hint``.  In tree mode, a name that is the exporter's parameter path of every tensor
        (``layer1.0.conv1`` with ``layer1.0.conv1.weight``) becomes the path relative to the
        class being written, so state-dict keys equal the original model's.  A tensor the
        exporter changed (BatchNorm fused into a Conv, constant folding) never takes an
        original key: its module is named ``<name>_folded``."""
        if not self._tree:
            return self.attrs.new(hint, default)
        rel = self._relative(hint)
        leaf = leaf_path(node, self.scope_path)
        full = lambda k: ".".join((hint,) + ((k,) if k else ()))
        # the tensors are the file's tensors named after ``hint`` (the original parameters);
        # BatchNorm's step counter is the emitter's (no file keeps it)
        orig = bool(hint) and not _rewritten(node) and all(
            (self._is_tensor(v, full(k)) and not self._exporter_folded(full(k)))
            or (k == "weight" and self._linear_t(v, tensors, full, node))
            for k, v in tensors.items() if k != "num_batches_tracked")
        trusted = orig and rel is not None
        if orig and leaf and leaf != rel and not single:
            # the original tensors of another module with equal values (the exporter shares
            # equal initializers; tied weights): the module this node was recorded in has
            # the same values under its own name
            rel, trusted = leaf, True
        elif not trusted and leaf and (rel is None or len(rel) != 1 or _from_node_name(hint, node)):
            # else the name the tensors carry (dynamo: conv1 for a BN-fused conv); a hint made
            # from the node's name (TorchScript's /conv1/Conv) gives way to its scope (conv1)
            rel = leaf
        if rel is not None and trusted:
            target = self._slot(rel, single)
            if target is not None:
                return target
        if rel is not None:
            name = "_".join(rel)
            if trusted:
                return self.attrs.new(name, default)
            attr = self.attrs.new(name + "_folded", default)
            self.untrusted.append(".".join(self.scope_path + (attr,)))
            return attr
        if mark:  # a parameter with no original key (a constant the exporter computed)
            attr = self.attrs.new(hint + "_folded", default)
            self.untrusted.append(".".join(self.scope_path + (attr,)))
            return attr
        return self.attrs.new(hint, default)

    def _child_slot(self, rel: tuple[str, ...], ctor: str, state: dict) -> str:
        target = self._slot(rel, single=False)
        if isinstance(target, tuple):
            self.lists[target[0]][target[1]] = (ctor, state)
            return f"self.{target[0]}[{target[1]}]"
        if target is None:
            target = self.attrs.new("_".join(rel), "m")
            self.untrusted.append(".".join(self.scope_path + (target,)))
        self.modules[target] = Submodule(target, ctor, state)
        return f"self.{target}"
