"""Walk a normalized ONNX graph and build the ncnn graph, one op emitter per node."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..errors import ConversionError, InputError, NnportError
from .graph import Graph, Weight
from .legalize.probe import Probe

MAX_NCNN_RANK = 4


class Context:
    def __init__(self, model: ir.Model, probe: Probe):
        self.model = model
        self.probe = probe
        self.g = Graph()
        self.blob_of: dict[str, str] = {}  # onnx value name -> ncnn blob
        self.drop_of: dict[str, bool] = {}  # onnx value name -> batch axis dropped
        self.node: ir.Node | None = None
        self.skip: set[int] = set()  # ids of nodes absorbed by another emitter
        self.consumers: dict[str, list[ir.Node]] = {}
        for n in model.graph:
            for v in n.inputs:
                if v is not None:
                    self.consumers.setdefault(v.name, []).append(n)
        self.graph_outputs = {v.name for v in model.graph.outputs}
        # (node, op, ncnn layer, "int8" | "float32", why not int8) for quantized layers
        self.quant_log: list[tuple] = []
        # DequantizeLinear outputs computed when a float layer first reads them (op_quant)
        self.fake_quant: dict[str, ir.Node] = {}
        self.merged_ok = False  # the node being emitted may write ``merged`` values
        self.declared_values: dict[str, str] = {}  # blob -> the ONNX value ``out`` named it for

    # ---- facts about ONNX values ----
    def shape(self, v) -> tuple:
        name = v if isinstance(v, str) else v.name
        if name not in self.probe.shape:
            bad = self.probe.rejected.get(name)
            if bad is None:
                self.fail(f"no shape known for {name!r}")
            node, op, msg = bad
            if self.node is not None and node == self.node.name:
                self.fail(f"the model is invalid here, ONNX shape inference rejects this node: "
                          f"{msg}")
            self.fail(f"no shape known for {name!r}: the model is invalid at node {node!r} "
                      f"({op}), which ONNX shape inference rejects: {msg}")
        return self.probe.shape[name]

    def rank(self, v) -> int:
        return len(self.shape(v))

    def is_const(self, v) -> bool:
        return v is not None and v.name in self.probe.value

    def const(self, v) -> np.ndarray | None:
        if v is None:
            return None
        return self.probe.value.get(v.name)

    def need_const(self, v, what: str) -> np.ndarray:
        c = self.const(v)
        if c is None:
            self.fail(f"{what} must be known at conversion time for ncnn")
        return c

    def varies(self, v) -> np.ndarray | None:
        return self.probe.varies.get(v.name)

    def drop(self, v) -> bool:
        name = v if isinstance(v, str) else v.name
        if name in self.drop_of:
            return self.drop_of[name]
        shp = self.shape(name)
        return len(shp) >= 2 and shp[0] == 1

    def merged(self, v) -> int:
        """N when ``v`` is a rank-5 (N, C, D, H, W) tensor with its batch held in ncnn's
        channel axis: one blob (c=N*C, d, h, w), the same bytes; else 0.  Only the ops that
        ``merged.emitter`` lets through read or write such a value."""
        shp = self.shape(v)
        return int(shp[0]) if len(shp) == MAX_NCNN_RANK + 1 and not self.drop(v) else 0

    def nshape(self, v) -> tuple:
        """The ncnn shape (outermost first: c, d, h, w) of a value."""
        shp = self.shape(v)
        if self.merged(v):
            return (shp[0] * shp[1],) + tuple(shp[2:])
        return tuple(shp[1:]) if self.drop(v) else tuple(shp)

    def layout(self, v) -> str:
        """How a graph input or output is fed or read, recorded in its Input/Noop layer name:
        "1" batch of 1 dropped, "0" held whole, "m<N>" batch of N merged into the channels,
        "s" a scalar (rank 0) held as one element."""
        n = self.merged(v)
        if n:
            return f"m{n}"
        return "s" if self.rank(v) == 0 else str(int(self.drop(v)))

    def axis(self, v, onnx_axis: int) -> int:
        r = self.rank(v)
        a = onnx_axis + r if onnx_axis < 0 else onnx_axis
        n = self.merged(v)
        if n:  # (N*C, d, h, w): D, H and W are ncnn's d, h, w; N and C share the channels
            if a < 2:
                self.fail(f"operates on the {'batch' if a == 0 else 'channel'} axis of a "
                          f"rank-5 tensor with a batch of {n}, which ncnn holds as N*C "
                          "channels; only D, H and W are axes of their own there")
            return a - 1
        if self.drop(v):
            if a == 0:
                self.fail("operates on the batch axis, which ncnn does not have")
            a -= 1
        return a

    def per_sample(self, x, y, fn):
        """Emit ``fn(in_blob, out_blob)``, the layers that compute one (C, spatial...) sample of
        ``y`` from one of ``x``, on every sample of ``x``'s axis 0.  A dropped batch of 1 is
        one call.  A batch of N held whole is cropped sample by sample (Crop 9=starts 10=ends
        11=axes), each sample is reshaped to its own (C, spatial...) blob, run, reshaped back
        to (1, C', spatial'...) and the N results are concatenated on ncnn axis 0 (Concat
        0=axis): ncnn's convolution-like layers run one sample.  A rank-5 batch of N held
        ``merged`` as (N*C, d, h, w) is cropped on its channels; the results concatenated
        there are the merged output."""
        if self.drop(x):
            return fn(self.blob(x), self.out(y, True))
        if self.merged(x):  # sample i is channels [i*C, (i+1)*C): no reshapes
            if self.rank(y) != self.rank(x):
                self.fail("internal: a per-sample op on a merged rank-5 batch changes the rank")
            c, src, parts = self.shape(x)[1], self.blob(x), []
            for i in range(self.merged(x)):
                one = self.add("Crop", [src], [self.g.unique(f"{y.name}_s{i}")],
                               {9: [i * c], 10: [(i + 1) * c], 11: [0]})
                parts.append(fn(one, self.g.unique(f"{y.name}_s{i}_out")))
            return self.add("Concat", parts, [self.out(y, False)], {0: 0})
        from .ops.common import reshape_params

        xs, ys = self.shape(x), self.shape(y)
        if len(xs) < 2 or len(xs) > MAX_NCNN_RANK:
            self.fail(f"runs per sample on a rank-{len(xs)} tensor with a batch of {xs[0]}; "
                      "ncnn holds at most 4 dims")
        src, parts = self.blob(x), []
        for i in range(xs[0]):
            one = self.add("Crop", [src], [self.g.unique(f"{y.name}_s{i}")],
                           {9: [i], 10: [i + 1], 11: [0]})
            one = self.add("Reshape", [one], [self.g.unique(f"{y.name}_s{i}_in")],
                           reshape_params(self, xs[1:], None))
            res = fn(one, self.g.unique(f"{y.name}_s{i}_out"))
            parts.append(self.add("Reshape", [res], [self.g.unique(f"{y.name}_s{i}_back")],
                                  reshape_params(self, (1,) + tuple(ys[1:]), None)))
        return self.add("Concat", parts, [self.out(y, False)], {0: 0})

    def per_channel(self, x, y, fn):
        """Emit ``fn(in_blob, out_blob)`` for an op that treats every channel of an
        (N, C, spatial...) tensor alone (pooling, resizing, spatial padding): a dropped batch
        of 1 is one call; a batch of N held whole is reshaped to (N*C, spatial...) around it
        (Reshape 0=w 1=h 11=d 2=c), which is exact and one layer each side; a rank-5 batch
        of N is already held so (``merged``)."""
        if self.drop(x) or self.merged(x):
            return fn(self.blob(x), self.out(y, not self.merged(x)))
        from .ops.common import reshape_params

        xs, ys = self.shape(x), self.shape(y)
        if len(xs) < 3 or len(xs) - 1 > MAX_NCNN_RANK:
            self.fail(f"runs per channel on a rank-{len(xs)} tensor with a batch of {xs[0]}; "
                      "ncnn holds at most 4 dims")
        merged = self.add("Reshape", [self.blob(x)], [self.g.unique(y.name + "_nc")],
                          reshape_params(self, (xs[0] * xs[1],) + tuple(xs[2:]), None))
        res = fn(merged, self.g.unique(y.name + "_nc_out"))
        return self.add("Reshape", [res], [self.out(y, False)],
                        reshape_params(self, ys, None))

    def affine_tail(self, y, const_of):
        """The optional ``* scale`` then ``+ shift`` by constants that follow a normalization's
        output ``y``: (scale or None, shift or None, those nodes, the last value).
        ``const_of(other_input, node)`` gives the accepted constant, or None to stop."""
        found, nodes = {}, []
        nxt = self.single_consumer(y)
        for op in ("Mul", "Add"):
            if nxt is None or nxt.op_type != op:
                continue
            k = const_of(nxt.inputs[1] if nxt.inputs[0] is y else nxt.inputs[0], nxt)
            if k is None:
                break
            found[op] = k
            nodes.append(nxt)
            y = nxt.outputs[0]
            nxt = self.single_consumer(y)
        return found.get("Mul"), found.get("Add"), nodes, y

    def single_consumer(self, v) -> ir.Node | None:
        cons = self.consumers.get(v.name, [])
        if len(cons) == 1 and v.name not in self.graph_outputs:
            return cons[0]
        return None

    # ---- building ----
    def fail(self, msg: str):
        n = self.node
        where = f"node {n.name or '(unnamed)'!r} ({n.op_type})" if n is not None else "model"
        raise ConversionError(f"{where}: {msg}")

    def blob(self, v, like=None) -> str:
        """The ncnn blob of an ONNX value; constants become MemoryData layers (shaped to
        broadcast against ``like`` when given)."""
        if v.name in self.fake_quant and v.name not in self.blob_of:
            from .ops.op_quant import emit_fake_quant

            emit_fake_quant(self, self.fake_quant[v.name], v)
        if v.name in self.blob_of and like is None:
            return self.blob_of[v.name]
        c = self.const(v)
        if c is None:
            if v.name not in self.blob_of:
                self.fail(f"input {v.name!r} has no ncnn blob")
            return self.blob_of[v.name]
        arr = np.asarray(c, dtype=np.float32)
        if like is not None:
            r = self.rank(like)
            if arr.ndim > r:
                arr = arr.reshape(arr.shape[arr.ndim - r:]) if all(
                    d == 1 for d in arr.shape[:arr.ndim - r]) else arr
            arr = arr.reshape((1,) * (r - arr.ndim) + arr.shape)
            if self.drop(like):
                if arr.shape[0] != 1:
                    self.fail("constant varies along the batch axis")
                arr = arr[0]
        elif arr.ndim >= 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 0:
            arr = arr.reshape(1)
        return self.memory_data(arr, v.name)

    def memory_data(self, arr: np.ndarray, base: str) -> str:
        if arr.ndim > MAX_NCNN_RANK:
            self.fail(f"constant of rank {arr.ndim} does not fit ncnn's 4 dims")
        top = self.g.unique(base + "_const")
        p = {}
        keys = [0, 1, 11, 2] if arr.ndim == 4 else [0, 1, 2]  # w, h, (d,) c
        for k, d in zip(keys, reversed(arr.shape)):
            p[k] = int(d)
        self.g.add("MemoryData", [], [top], p, [Weight(arr)])
        return top

    def out(self, v, drop: bool | None = None) -> str:
        """Name the ncnn blob for ONNX output ``v`` (the ONNX name, sanitized)."""
        name = self.g.unique(v.name)
        self.blob_of[v.name] = name
        self.declared_values[name] = v.name
        if drop is not None:
            self.drop_of[v.name] = drop
        shp = self.shape(v)
        if len(shp) - (1 if self.drop(v) else 0) > MAX_NCNN_RANK and not (
                self.merged_ok and self.merged(v)):
            self.fail(f"output {v.name!r} has rank {len(shp)}; ncnn holds at most 4 dims "
                      "besides the batch")
        return name

    def temp(self, base: str, shape, value=None) -> ir.Value:
        """A new ONNX value between layers of one node's mapping, with a known shape (and a
        constant value, when given), usable wherever an ONNX value is."""
        v = ir.Value(name=self.g.unique(base))
        self.probe.shape[v.name] = tuple(int(d) for d in shape)
        if value is not None:
            self.probe.value[v.name] = np.asarray(value)
        return v

    def then(self, y, layers):
        """Follow the layer that just wrote ``y``'s blob with ``layers`` [(type, params)]: the
        last of them writes the blob under ``y``'s name."""
        blob = self.blob_of[y.name]
        last = self.g.layers[-1]
        if last.tops != [blob]:
            self.fail("internal: the layer to follow is not the last one")
        cur = last.tops[0] = self.g.unique(y.name + "_pre")
        for i, (typ, p) in enumerate(layers):
            top = blob if i == len(layers) - 1 else self.g.unique(y.name + "_t")
            cur = self.add(typ, [cur], [top], p)
        return blob

    def alias(self, v, blob: str, drop: bool | None = None):
        """``v`` is ``blob`` (no layer), unless ``v`` is a graph output: a caller extracts an
        output by its ONNX name, so it gets a Noop that writes the blob under that name."""
        if v.name in self.graph_outputs:
            self.add("Noop", [blob], [self.out(v, drop)])
            return
        self.blob_of[v.name] = blob
        if drop is not None:
            self.drop_of[v.name] = drop

    def add(self, type_, bottoms, tops, params=None, weights=None) -> str:
        base = self.node.name if self.node is not None and self.node.name else type_.lower()
        layer = self.g.add(type_, bottoms, tops, params, weights, name=self.g.unique("L_" + base))
        return layer.tops[0] if layer.tops else ""

    def unary(self, type_: str, params=None, x=None, y=None) -> str:
        n = self.node
        x = x if x is not None else n.inputs[0]
        y = y if y is not None else n.outputs[0]
        return self.add(type_, [self.blob(x)], [self.out(y, self.drop(x))], params)


def convert_graph(model: ir.Model, probe: Probe) -> Graph:
    from ..registry import model_opsets, norm_domain
    from .ops import REGISTRY
    from . import merged
    from .legalize import fuse, patterns, split

    ctx = Context(model, probe)
    for s in probe.specs:
        shp = probe.input_shapes[s.name]
        v = model.graph.inputs[[i.name for i in model.graph.inputs].index(s.name)]
        if len(ctx.nshape(v)) > MAX_NCNN_RANK:
            raise InputError(f"input {s.name!r} has rank {len(shp)}; ncnn holds at most 4 dims "
                             "besides the batch")
        name = ctx.g.unique(s.name)
        ctx.blob_of[s.name] = name

        params = {}  # Input 0=w 1=h 2=c are hints only: left out so that any size loads
        # the layer name records the feed's layout, e.g. a batch axis of 1 lost (runner.py)
        ctx.g.add("Input", [], [name], params,
                  name=ctx.g.unique(f"nnport_input_{ctx.layout(v)}_{s.name}"))
        ctx.g.inputs.append(name)
    claimed = patterns.find(ctx)
    opsets = model_opsets(model)
    for node in model.graph:
        if id(node) in ctx.skip:
            continue
        if all(o.name in probe.value for o in node.outputs if o.name):
            continue  # shape arithmetic and constants: folded into params
        ctx.node = node
        # nnport's private nodes (legalize passes) are in their own domain, "nnport"
        fn = claimed.get(id(node))
        if fn is None:
            dom = norm_domain(node.domain)
            em = REGISTRY.lookup(dom, node.op_type, opsets.get(dom, 1))
            if em is None:
                ctx.fail("no ncnn mapping")
            fn = em.fn
        fn = merged.emitter(ctx, node, fn)
        try:
            fn(ctx, node)
        except NnportError:
            raise
        except Exception as exc:  # a malformed node an emitter did not expect (as torch_emit)
            ctx.fail(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    ctx.node = None
    for v in model.graph.outputs:
        if v.name in ctx.fake_quant:
            ctx.blob(v)
        if v.name not in ctx.blob_of:
            if v.name in probe.value:
                ctx.blob_of[v.name] = ctx.blob(v)
            else:
                raise ConversionError(f"graph output {v.name!r} was not produced")
        if 0 in ctx.shape(v):
            raise ConversionError(f"graph output {v.name!r} is empty (shape "
                                  f"{list(ctx.shape(v))}): ncnn has no empty tensors")
        ctx.g.outputs.append(ctx.blob_of[v.name])
        ctx.g.output_layout.append(ctx.layout(v))
    for i, (blob, layout) in enumerate(zip(ctx.g.outputs, ctx.g.output_layout)):
        ctx.g.add("Noop", [blob], [], name=f"nnport_output_{i}_{layout}")
    for blob, name in ctx.declared_values.items():
        ctx.g.declared[blob] = (1,) if ctx.rank(name) == 0 else tuple(ctx.nshape(name))
    fuse.run(ctx.g)
    split.run(ctx.g)
    from .ops.op_quant import quant_notes

    ctx.g.notes.extend(quant_notes(ctx.quant_log))
    return ctx.g
