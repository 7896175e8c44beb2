"""Find the first node whose output diverges between two implementations of a model.

The reference ``a`` is an ONNX model run by onnxruntime with intermediate tensors exposed as
extra graph outputs.  The candidate ``b`` is another ONNX model (same tensor names), or a
generated ``model.py``: its code is regenerated from ``a`` in recording mode (every node reports
its outputs to ``module.recorder``) and ``b``'s safetensors weights are loaded into it, so a
corrupted weight in ``b`` is found.  Tensors are compared chunk by chunk, in ``a``'s topological
order, and only the current chunk is held in memory; by default the search stops in the first
chunk that holds a diverging tensor.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

from ..errors import InputError
from ..io import describe, from_proto, load_skeleton, owned_proto
from .compare import compare_arrays

DEFAULT_CHUNK = 64


@dataclass
class TensorError:
    index: int  # position of the producing node in a's topological order (-1: not a node output)
    node: str
    op: str
    name: str  # tensor name
    max_abs_err: float
    max_rel_err: float
    cosine: float | None
    ok: bool
    note: str = ""


@dataclass
class LocateResult:
    a: str
    b: str
    report: object  # VerifyReport of the graph outputs
    found: bool = False
    node: str | None = None
    op: str | None = None
    index: int | None = None
    output: TensorError | None = None
    inputs: list = field(default_factory=list)  # dicts: name, kind, and errors where known
    source: dict | None = None  # {"file", "line", "text"} for generated torch code
    trace: list = field(default_factory=list)  # TensorError for every compared tensor, in order
    nodes_total: int = 0
    compared: int = 0
    note: str = ""
    graph_id: str = "<main>"  # the reference's graph and node ids, as Model Explorer names them
    node_ids: dict = field(default_factory=dict, repr=False)  # output tensor -> node id

    def to_dict(self) -> dict:
        return {"found": self.found, "node": self.node, "op": self.op, "index": self.index,
                "output": asdict(self.output) if self.output else None, "inputs": self.inputs,
                "source": self.source, "nodes_total": self.nodes_total,
                "compared": self.compared, "note": self.note,
                "trace": [asdict(t) for t in self.trace]}

    def lines(self) -> list[str]:
        if not self.found:
            return [f"locate: {self.note or 'no diverging node found'} "
                    f"(compared {self.compared} tensors)"]
        o = self.output
        cos = f" cos={o.cosine:.6f}" if o.cosine is not None else ""
        out = [f"locate: first diverging node {self.node!r} ({self.op}), node {self.index} "
               f"of {self.nodes_total} in topological order",
               f"  output {o.name}: max_abs={o.max_abs_err:.3g} max_rel={o.max_rel_err:.3g}{cos}"
               + (f" ({o.note})" if o.note else "")]
        for i in self.inputs:
            if "max_abs_err" in i:
                state = "ok" if i["ok"] else "DIFFERS"
                out.append(f"  input {i['name']} ({i['kind']}): max_abs={i['max_abs_err']:.3g} "
                           f"max_rel={i['max_rel_err']:.3g} [{state}]")
            else:
                out.append(f"  input {i['name']} ({i['kind']}): {i.get('note', 'not compared')}")
        if self.source:
            out.append(f"  source {self.source['file']}:{self.source['line']}: "
                       f"{self.source['text'].strip()}")
        return out


# ---------------------------------------------------------------------------------------------
def _topo_nodes(proto: onnx.ModelProto) -> list:
    """(index, node name, op, [output names]) for the main graph, in topological order."""
    from onnx_ir.passes import common as ir_common

    model = from_proto(proto)
    try:
        ir_common.TopologicalSortPass()(model)
    except Exception:
        pass
    out = []
    for i, n in enumerate(model.graph):
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
        out.append((i, n.name or "", op, [o.name for o in n.outputs if o.name],
                    [v.name if v is not None else "" for v in n.inputs]))
    return out


class _OnnxTap:
    """Run an ONNX model in onnxruntime with chosen intermediate tensors exposed."""

    def __init__(self, src):
        # a single-file model is read lean: its large weights stay in the file, where
        # onnxruntime maps them (``folder``), instead of in this proto and in every session's
        # serialized copy of it
        self.proto = load_skeleton(src) if _onnx_path(src) else None
        self.folder = str(Path(src).resolve().parent) if self.proto is not None else None
        if self.proto is None:
            self.proto = owned_proto(src)  # its outputs are changed below
        self.n_outputs = len(self.proto.graph.output)
        self.name = describe(src)
        self.tensor_names = {o for n in self.proto.graph.node for o in n.output if o}
        self.initializers = {t.name: t for t in self.proto.graph.initializer}

    def model(self):
        """The model as an ``ir.Model`` (its weights read from their file when asked)."""
        return from_proto(self.proto, self.folder)

    def run(self, feeds: dict, names: list[str]) -> dict:
        from .ort import OrtRunner

        graph = self.proto.graph
        present = {o.name for o in graph.output}
        extra = [n for n in names if n not in present]
        for n in extra:
            vi = onnx.ValueInfoProto()
            vi.name = n
            graph.output.append(vi)
        try:
            runner = OrtRunner(self.proto, folder=self.folder)
            outs = runner.run(feeds)
            by_name = dict(zip(runner.output_names, outs))
            del runner
        finally:
            del graph.output[self.n_outputs:]
        return {n: by_name.get(n) for n in names}

    def weight(self, name: str):
        t = self.initializers.get(name)
        if t is None:
            return None
        from onnx import numpy_helper

        return numpy_helper.to_array(t, self.folder or "")


class _TorchTap:
    """The code nnport generates from ``a`` with recording on, holding ``b``'s weights."""

    def __init__(self, a, b_py):
        from ..convert import _source_name, prepare
        from ..torch_emit import generate

        self.a = a
        self.path = Path(b_py)
        if not self.path.is_file():
            raise InputError(f"{b_py}: no such file")
        model = prepare(a)
        # the layout b was written with: the module tree (default) or flat (--flat)
        try:
            head = self.path.read_text(encoding="utf-8", errors="replace")[:4000]
        except OSError:
            head = ""
        self.flat = "# Module tree as recorded by the exporter" not in head
        # and the If nodes as torch.cond (--control-flow cond): its lines are found by the
        # line map of the same code (the recording module keeps Python ifs)
        self.control_flow = "cond" if "(--control-flow cond)" in head else "if"
        source, state = generate(model, source_name=_source_name(a), record=True,
                                 flat=self.flat)
        # after generate(): the tensors inside fused nodes (MatMul+Add -> Linear, attention)
        # are not computed on this side
        self.tensor_names = {o.name for n in model.graph for o in n.outputs if o.name}
        del model
        st = self.path.with_suffix(".safetensors")
        self._source, self._state, self._module = source, None if st.is_file() else state, None
        del state  # b's weights, not a's, where b has them (a's, folded by generate(), go)
        # the line map written beside b (in its weights' metadata), while b is unchanged
        self.line_map = _stored_lines(self.path, st) if st.is_file() else None
        self.node_of: dict[str, str] = {}  # tensor name -> node name (normalized model)
        self.input_names = None

    @property
    def module(self):
        """The recording module, built on first use (the weights are read then)."""
        if self._module is None:
            self._module = self._build().eval()
        return self._module

    def _build(self):
        from ..torch_emit import build_module

        source, a = self._source, self.a
        st = self.path.with_suffix(".safetensors")
        if self._state is None:
            try:
                from ..torch_emit.st_writer import read_safetensors

                weights = read_safetensors(st)
            except Exception as exc:
                raise InputError(f"{st}: cannot read weights ({exc})") from None
            try:
                module = build_module(source, weights, name="locate")
            except Exception as exc:
                raise InputError(
                    f"--locate: the weights in {st} do not fit the code nnport generates from "
                    f"{describe(a)} ({' '.join(str(exc).split())[:200]}); was {self.path} "
                    f"generated from this model?") from None
            del weights
            return module
        state, self._state = self._state, None
        return build_module(source, state, name="locate")

    def run(self, feeds: dict, names: list[str]) -> dict:
        import torch

        from .torch_runner import to_numpy, to_torch_input

        wanted = set(names)
        got: dict = {}

        def recorder(node, name, value):
            self.node_of.setdefault(name, node)
            if name in wanted:
                got[name] = to_numpy(value.detach() if hasattr(value, "detach") else value)

        self.module.recorder = recorder
        try:
            args = [to_torch_input(feeds[n]) for n in (self.input_names or list(feeds))]
            with torch.no_grad():
                self.module(*args)
        except Exception as exc:
            from ..errors import VerificationError

            raise VerificationError(f"the recording torch model failed to run: "
                                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                                    ) from None
        finally:
            self.module.recorder = None
        return {n: got.get(n) for n in names}

    def weight(self, name: str):
        return None

    def source_line(self, tensor: str, node_name: str | None) -> dict | None:
        """The line of ``b`` (or of the regenerated code) that computes ``tensor``: from the
        line map stored with b's weights while b is the file nnport wrote, else by generating
        the code again and finding the node's lines in b by their text."""
        from ..convert import _source_name, prepare
        from ..torch_emit import fuse
        from ..torch_emit.codegen import CodeGen

        node_name = self.node_of.get(tensor, node_name)
        if self.line_map is not None:
            line = self.line_map.get(node_name or "")
            if not line:
                return None
            text = self.path.read_text(encoding="utf-8").splitlines()[line - 1]
            return {"file": str(self.path), "line": line, "text": text}
        gen = CodeGen(fuse(prepare(self.a)), source_name=_source_name(self.a), record=False,
                      flat=self.flat, control_flow=self.control_flow)
        source, _ = gen.generate()
        try:
            file_lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            file_lines = []
        # the code generator's own line -> node map, where b is the code it writes
        line = gen.line_of.get(node_name)
        if line and source.splitlines() == file_lines:
            return {"file": str(self.path), "line": line, "text": file_lines[line - 1]}
        texts = [t for t in gen.node_texts(node_name) if t]
        if not texts:
            return None
        for want in texts:
            for i, line in enumerate(file_lines, 1):
                if line.strip() == want:
                    return {"file": str(self.path), "line": i, "text": line}
        return {"file": f"{self.path} (regenerated)", "line": 0, "text": texts[0]}


class _Spill:
    """Tensors kept in a temporary folder until they are compared (``.npy`` files; values
    that are not plain arrays, ONNX sequences and maps, stay in memory)."""

    def __init__(self):
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="nnport-locate-")
        self._kept: dict[tuple[int, str], object] = {}
        self._files: dict[tuple[int, str], str] = {}

    def put(self, i: int, values: dict) -> None:
        import numpy as np

        for j, (name, v) in enumerate(values.items()):
            if isinstance(v, np.ndarray) and v.dtype != object:
                path = os.path.join(self._dir.name, f"{i}_{j}.npy")
                try:
                    np.save(path, v, allow_pickle=False)
                except OSError as exc:
                    from ..errors import VerificationError

                    raise VerificationError(f"--report: cannot keep onnxruntime's tensor "
                                            f"{name!r} in {self._dir.name} ({exc})") from None
                self._files[(i, name)] = path
            else:
                self._kept[(i, name)] = v

    def get(self, i: int, names: list[str]) -> dict:
        import numpy as np

        out = {}
        for n in names:
            path = self._files.pop((i, n), None)
            if path is not None:
                out[n] = np.load(path, allow_pickle=False)
                os.remove(path)
            else:
                out[n] = self._kept.pop((i, n), None)
        return out


def _stored_lines(py: Path, st: Path) -> dict[str, int] | None:
    """The node -> line map nnport stored in ``st`` when it wrote ``py``, if ``py`` is still
    that file (same SHA-256) and the map is well formed; else None."""
    import hashlib

    from ..torch_emit import LINES_KEY, SOURCE_KEY
    from ..torch_emit.st_writer import read_header

    try:
        with open(st, "rb") as fh:  # the header alone (safe_open maps the whole file)
            meta = read_header(fh)[0].get("__metadata__") or {}
        if meta.get(SOURCE_KEY) != hashlib.sha256(py.read_bytes()).hexdigest():
            return None
        lines = json.loads(meta[LINES_KEY])
        n = py.read_text(encoding="utf-8").count("\n") + 1
    except Exception:  # no map, unreadable, or not ours: the map is only a shortcut
        return None
    if not isinstance(lines, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and 1 <= v <= n for k, v in lines.items()):
        return None
    return lines


def _onnx_path(src) -> bool:
    return isinstance(src, (str, os.PathLike)) and Path(src).suffix.lower() == ".onnx"


def _tap(src, a):
    if isinstance(src, onnx.ModelProto) or _onnx_path(src):
        return _OnnxTap(src)
    if isinstance(src, (str, os.PathLike)) and Path(src).suffix.lower() == ".py":
        return _TorchTap(a, src)
    try:
        import onnx_ir as ir

        if isinstance(src, ir.Model):
            return _OnnxTap(ir.to_proto(src))
    except ImportError:
        pass
    raise InputError(f"--locate: cannot look inside {describe(src)} (locate works on .onnx "
                     "models and nnport-generated .py files)")


def locate(a, b, *, input_shapes: dict | None = None, inputs: dict | None = None,
           seed: int = 0, rtol: float | None = None, atol: float | None = None,
           specs=None, chunk_size: int = DEFAULT_CHUNK, scan_all: bool = False,
           report=None) -> LocateResult:
    """Verify ``b`` against ``a`` and, when outputs diverge (or ``scan_all``), compare their
    intermediate tensors to find the first node (in ``a``'s topological order) whose output
    diverges.  ``report``: an already computed VerifyReport for the same options."""
    from . import verify
    from .inputs import random_inputs, resolve_shapes, specs_from_model

    if not (isinstance(a, onnx.ModelProto) or _onnx_path(a)):
        raise InputError(f"--locate: the reference {describe(a)} must be an .onnx model")
    if report is None:
        report = verify(a, b, input_shapes=input_shapes, inputs=inputs, seed=seed, rtol=rtol,
                        atol=atol, specs=specs)
    result = LocateResult(describe(a), describe(b), report)
    if report.ok and not scan_all:
        result.note = "outputs match; nothing to locate"
        return result
    tap_a = _OnnxTap(a)
    tap_b = _tap(b, a)
    from .node_data import node_ids

    result.graph_id, result.node_ids = node_ids(tap_a.proto)
    if specs is None:
        specs = specs_from_model(tap_a.model())
    shapes = resolve_shapes(specs, input_shapes)
    feeds = random_inputs(specs, shapes, seed, inputs)
    if isinstance(tap_b, _TorchTap):
        tap_b.input_names = [s.name for s in specs]
    nodes = _topo_nodes(tap_a.proto)
    result.nodes_total = len(nodes)
    producer = {}
    order = []  # (tensor, node index) in topological order, present on both sides
    for idx, name, op, outs, _ in nodes:
        for o in outs:
            producer[o] = (idx, name, op)
            if o in tap_b.tensor_names:
                order.append(o)
    from . import onnx_quant_steps

    steps = onnx_quant_steps(tap_a.model(), None) if rtol is None and atol is None else {}
    errors: dict[str, TensorError] = {}
    first: TensorError | None = None
    chunks = [order[i:i + max(1, chunk_size)] for i in range(0, len(order), max(1, chunk_size))]
    spill = None
    if scan_all and isinstance(tap_b, _TorchTap):
        # every tensor is compared: onnxruntime goes over the whole graph first and its
        # tensors wait on disk, so its mapping of a's weights and the recording module's
        # copy of b's are never held at once
        spill = _Spill()
        for i, chunk in enumerate(chunks):
            spill.put(i, tap_a.run(feeds, chunk))
    for i, chunk in enumerate(chunks):
        ref = spill.get(i, chunk) if spill is not None else tap_a.run(feeds, chunk)
        got = tap_b.run(feeds, chunk)
        for name in chunk:
            r, g = ref.pop(name, None), got.pop(name, None)
            idx, node, op = producer[name]
            if r is None and g is None:
                continue
            # a boundary flip (within one step of the tensor's quantization) is not a divergence
            rep = compare_arrays(name, r, g, rtol, atol, step=steps.get(name))
            te = TensorError(idx, node, op, name, rep.max_abs_err, rep.max_rel_err, rep.cosine,
                             rep.ok, rep.note)
            errors[name] = te
            result.trace.append(te)
            if not rep.ok and first is None:
                first = te
        del ref, got
        if first is not None and not scan_all:
            break
    result.compared = len(result.trace)
    if first is None:
        result.note = ("outputs match" if report.ok else
                       "no intermediate tensor shared by both sides diverges")
        return result
    result.found = True
    result.node = first.node or f"<unnamed {first.op} #{first.index}>"
    result.op, result.index, result.output = first.op, first.index, first
    node_inputs = next(n[4] for n in nodes if n[0] == first.index)
    graph_inputs = {i.name for i in tap_a.proto.graph.input}
    for name in node_inputs:
        if not name:
            continue
        if name in errors:
            e = errors[name]
            result.inputs.append({"name": name, "kind": "tensor", "max_abs_err": e.max_abs_err,
                                  "max_rel_err": e.max_rel_err, "ok": e.ok})
        elif name in tap_a.initializers:
            wa, wb = tap_a.weight(name), tap_b.weight(name)
            if wb is None:
                result.inputs.append({"name": name, "kind": "weight",
                                      "note": "weight (not compared on this side)"})
            else:
                rep = compare_arrays(name, wa, wb, rtol, atol)
                result.inputs.append({"name": name, "kind": "weight",
                                      "max_abs_err": rep.max_abs_err,
                                      "max_rel_err": rep.max_rel_err, "ok": rep.ok})
        elif name in graph_inputs:
            result.inputs.append({"name": name, "kind": "graph input",
                                  "max_abs_err": 0.0, "max_rel_err": 0.0, "ok": True})
        else:
            result.inputs.append({"name": name, "kind": "tensor", "note": "not compared"})
    if isinstance(tap_b, _TorchTap):
        try:
            result.source = tap_b.source_line(first.name, first.node)
        except Exception:
            result.source = None
    return result


# ----- CLI: ``nnport verify A B --locate --report page.html`` --------------------------------
