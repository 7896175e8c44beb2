"""Fuzz nnport with hostile and random models: every outcome must be a result or a one-line
NnportError -- never another exception, a hang or a crash.

    .venv/bin/python benchmarks/fuzz.py --cases 100000            # 2 worker processes
    .venv/bin/python benchmarks/fuzz.py --cases 2000 --seed 7 --out fuzz-findings
    .venv/bin/python benchmarks/fuzz.py --replay fuzz-findings/<sig>.onnx --action convert

Two case families:
- ``bytes``: a small valid model (``seed_models()``) mutated by bit flips, byte stores,
  truncation, deletion, duplication and splices with another seed model;
- ``model``: a structurally valid model of 1-3 random common ops with random attributes,
  shapes and dtypes (``random_model()``).

A third family, ``torch``: the Python source of a random small ``nn.Module`` (``random_torch()``),
exported to ONNX (``export``, by either exporter).

Each case runs in a worker process (crashes and hangs are detected: the worker is replaced) with
one action: ``inspect`` (most cases), ``generate`` (ONNX -> source, compiled), ``convert``
(``nnport.convert(..., model.py, verify=False)``), ``verify`` (convert with verification,
then ``nnport.verify(onnx, py)`` on the written files), ``ncnn`` / ``verify_ncnn`` (the same
to ``model.param``, with concrete shapes for symbolic dims half the time), ``simplify``,
``extract`` and ``edit`` (random tensor names, hostile ones too, random shapes and opsets) or
``export`` (torch cases only).  Random models draw from the ``com.microsoft`` and ``ai.onnx.ml``
domains too.  Every distinct failure (exception type
and innermost nnport frame) is printed once and saved with a reproducer under ``--out``; so is
every ``mismatch`` (a verify or verify_ncnn case whose outputs disagree with onnxruntime), with
its action, ``--param`` and the verify report's lines.
The tests in tests/hardening import this file.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import wait as mp_wait
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

ACTIONS = ("inspect", "generate", "convert", "verify", "ncnn", "verify_ncnn", "simplify",
           "extract", "edit", "export")

# --------------------------------------------------------------------------------------------
# Seed models (small, valid)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def seed_models() -> list[bytes]:
    rng = np.random.default_rng(0)
    f = np.float32
    out = []
    # CNN: Conv, Relu, MaxPool, Flatten, Gemm
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["fl"]),
         helper.make_node("Gemm", ["fl", "fw", "fb"], ["y"], transB=1)],
        "cnn", [_vi("x", T.FLOAT, ["N", 2, 4, 4])], [_vi("y", T.FLOAT, ["N", 3])],
        [_init("w", rng.standard_normal((4, 2, 3, 3)).astype(f)), _init("b", np.zeros(4, f)),
         _init("fw", rng.standard_normal((3, 16)).astype(f)), _init("fb", np.ones(3, f))])
    out.append(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    # MLP with shape ops: MatMul, Add, Softmax, Shape/Gather/Concat/Reshape, Transpose
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Softmax", ["a"], ["s"], axis=-1),
         helper.make_node("Shape", ["s"], ["sh"]),
         helper.make_node("Gather", ["sh", "i0"], ["d0"], axis=0),
         helper.make_node("Concat", ["d0", "m1"], ["ns"], axis=0),
         helper.make_node("Reshape", ["s", "ns"], ["rs"]),
         helper.make_node("Transpose", ["rs"], ["y"], perm=[1, 0])],
        "mlp", [_vi("x", T.FLOAT, ["B", 5])], [_vi("y", T.FLOAT, [None, "B"])],
        [_init("w", rng.standard_normal((5, 6)).astype(f)), _init("b", np.zeros(6, f)),
         _init("i0", np.array([0], np.int64)), _init("m1", np.array([-1], np.int64))])
    out.append(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    # control flow: If with two branches, Loop with a counter
    then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [_vi("t", T.FLOAT, [3])])
    else_g = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [],
                               [_vi("e", T.FLOAT, [3])])
    body = helper.make_graph(
        [helper.make_node("Add", ["acc", "x"], ["acc2"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", T.INT64, []), _vi("cond_in", T.BOOL, []), _vi("acc", T.FLOAT, [3])],
        [_vi("cond_out", T.BOOL, []), _vi("acc2", T.FLOAT, [3])])
    g = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["i"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Loop", ["n", "", "i"], ["y"], body=body)],
        "ctrl", [_vi("x", T.FLOAT, [3])], [_vi("y", T.FLOAT, [3])],
        [_init("zero", np.array(0, f)), _init("n", np.array(3, np.int64))])
    out.append(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    # norms, Constant/ConstantOfShape/Expand/Slice, metadata
    g = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "sc", "bi", "mu", "va"], ["bn"]),
         helper.make_node("Constant", [], ["shape"], value=_init("cv", np.array([2, 3, 4], np.int64))),
         helper.make_node("ConstantOfShape", ["shape"], ["z"],
                          value=_init("one", np.array([1.0], f))),
         helper.make_node("Expand", ["bn", "shape"], ["ex"]),
         helper.make_node("Add", ["ex", "z"], ["ad"]),
         helper.make_node("Slice", ["ad", "st", "en", "ax"], ["y"])],
        "norm", [_vi("x", T.FLOAT, [1, 3, 4])], [_vi("y", T.FLOAT, None)],
        [_init("sc", np.ones(3, f)), _init("bi", np.zeros(3, f)), _init("mu", np.zeros(3, f)),
         _init("va", np.ones(3, f)), _init("st", np.array([1], np.int64)),
         _init("en", np.array([3], np.int64)), _init("ax", np.array([2], np.int64))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)], producer_name="seed")
    helper.set_model_props(m, {"author": "nnport fuzz"})
    out.append(m)
    return [m.SerializeToString() for m in out]


# --------------------------------------------------------------------------------------------
# Mutations

_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x08, 0x10, 0x12, 0x1A, 0x22, 0x3A]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        kind = rng.randrange(7)
        if kind == 0:  # bit flip
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # store an interesting byte
            buf[rng.randrange(len(buf))] = rng.choice(_INTERESTING)
        elif kind == 2:  # truncate
            buf = buf[:rng.randrange(len(buf))]
        elif kind == 3:  # delete a run
            i = rng.randrange(len(buf))
            del buf[i:i + rng.randint(1, 16)]
        elif kind == 4:  # duplicate a run
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i:i + rng.randint(1, 32)]
        elif kind == 5:  # splice with another seed
            other = rng.choice(seeds)
            i, j = rng.randrange(len(buf) + 1), rng.randrange(len(other) + 1)
            buf = buf[:i] + other[j:]
        else:  # varint-ish: a large value in a random place
            i = rng.randrange(len(buf))
            buf[i:i + 1] = bytes([0xFF] * rng.randint(1, 9) + [0x01])
    return bytes(buf)


# --------------------------------------------------------------------------------------------
# Random structurally valid models

_FLOATS = [T.FLOAT] * 6 + [T.DOUBLE, T.FLOAT16]
_ANY = _FLOATS + [T.INT64, T.INT32, T.INT8, T.UINT8, T.BOOL]


def _axis(rng, rank):
    return rng.randint(-max(rank, 1), max(rank, 1)) if rng.random() < 0.9 else rng.randint(-9, 9)


def _ints(rng, n, lo, hi):
    return [rng.randint(lo, hi) for _ in range(n)]


# op -> (number of tensor inputs, function(rng, rank) -> attributes, extra constant inputs)
def _no_attrs(rng, rank):
    return {}


def _spatial(rng, rank):
    k = max(rank - 2, 1)
    attrs = {}
    if rng.random() < 0.8:
        attrs["kernel_shape"] = _ints(rng, k, 1, 3)
    if rng.random() < 0.5:
        attrs["strides"] = _ints(rng, k, 1, 3)
    if rng.random() < 0.4:
        attrs["pads"] = _ints(rng, 2 * k, 0, 2)
    if rng.random() < 0.2:
        attrs["auto_pad"] = rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", "BOGUS"])
    if rng.random() < 0.2:
        attrs["dilations"] = _ints(rng, k, 1, 2)
    if rng.random() < 0.1:
        attrs["ceil_mode"] = rng.randint(0, 1)
    return attrs


def _axis_attr(rng, rank):
    return {"axis": _axis(rng, rank)} if rng.random() < 0.8 else {}


def _reduce(rng, rank):
    attrs = {"keepdims": rng.randint(0, 1)}
    if rng.random() < 0.3:
        attrs["noop_with_empty_axes"] = rng.randint(0, 1)
    return attrs


def _perm(rng, rank):
    p = list(range(rank))
    rng.shuffle(p)
    if rng.random() < 0.1:
        p = p[:-1] or [5]
    return {"perm": p} if rng.random() < 0.9 else {}


def _gemm(rng, rank):
    return {k: v for k, v in {"transA": rng.randint(0, 1), "transB": rng.randint(0, 1),
                              "alpha": rng.choice([1.0, 0.5, -2.0]),
                              "beta": rng.choice([1.0, 0.0, 3.0])}.items() if rng.random() < 0.6}


def _clipattrs(rng, rank):
    return {}


def _leaky(rng, rank):
    return {"alpha": rng.choice([0.01, 0.2, -1.0, 1e30])} if rng.random() < 0.7 else {}


def _cast(rng, rank):
    return {"to": rng.choice(_ANY + [T.STRING, 99])}


def _softmax(rng, rank):
    return {"axis": _axis(rng, rank)}


def _concat(rng, rank):
    return {"axis": _axis(rng, rank)}


def _topk(rng, rank):
    return {"axis": _axis(rng, rank), "largest": rng.randint(0, 1), "sorted": rng.randint(0, 1)}


def _argmax(rng, rank):
    return {"axis": _axis(rng, rank), "keepdims": rng.randint(0, 1),
            "select_last_index": rng.randint(0, 1)}


def _depth(rng, rank):
    return {"blocksize": rng.randint(1, 3), "mode": rng.choice(["DCR", "CRD"])}


def _resize(rng, rank):
    return {"mode": rng.choice(["nearest", "linear", "cubic", "weird"]),
            "coordinate_transformation_mode": rng.choice(
                ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])}


def _layernorm(rng, rank):
    return {"axis": _axis(rng, rank), "epsilon": rng.choice([1e-5, 0.0, 1.0])}


def _cumsum(rng, rank):
    return {"exclusive": rng.randint(0, 1), "reverse": rng.randint(0, 1)}


def _pad(rng, rank):
    return {"mode": rng.choice(["constant", "reflect", "edge", "wrap"])}


def _gelu(rng, rank):
    return {"approximate": rng.choice(["none", "tanh"])} if rng.random() < 0.5 else {}


def _shape_vec(rng, rank):
    return np.array([rng.choice([-1, 0, 1, 2, 3, 4, 6]) for _ in range(rng.randint(0, 4))],
                    np.int64)


def _axes_vec(rng, rank):
    return np.array(sorted({_axis(rng, rank) for _ in range(rng.randint(0, 2))}), np.int64)


# (op, number of data inputs, attribute maker, constant-input makers)
OPS = [
    ("Relu", 1, _no_attrs, []), ("Sigmoid", 1, _no_attrs, []), ("Tanh", 1, _no_attrs, []),
    ("Abs", 1, _no_attrs, []), ("Neg", 1, _no_attrs, []), ("Exp", 1, _no_attrs, []),
    ("Log", 1, _no_attrs, []), ("Sqrt", 1, _no_attrs, []), ("Erf", 1, _no_attrs, []),
    ("Floor", 1, _no_attrs, []), ("Not", 1, _no_attrs, []), ("Identity", 1, _no_attrs, []),
    ("Add", 2, _no_attrs, []), ("Sub", 2, _no_attrs, []), ("Mul", 2, _no_attrs, []),
    ("Div", 2, _no_attrs, []), ("Pow", 2, _no_attrs, []), ("Mod", 2, lambda r, k: {"fmod": r.randint(0, 1)}, []),
    ("Equal", 2, _no_attrs, []), ("Less", 2, _no_attrs, []), ("Where", 3, _no_attrs, []),
    ("Max", 2, _no_attrs, []), ("Min", 2, _no_attrs, []), ("Sum", 3, _no_attrs, []),
    ("Mean", 2, _no_attrs, []),
    ("MatMul", 2, _no_attrs, []), ("Gemm", 3, _gemm, []),
    ("Conv", 2, _spatial, []), ("ConvTranspose", 2, _spatial, []),
    ("MaxPool", 1, _spatial, []), ("AveragePool", 1, _spatial, []),
    ("GlobalAveragePool", 1, _no_attrs, []), ("GlobalMaxPool", 1, _no_attrs, []),
    ("BatchNormalization", 5, lambda r, k: {"epsilon": r.choice([1e-5, 0.0])}, []),
    ("InstanceNormalization", 3, _no_attrs, []), ("LayerNormalization", 3, _layernorm, []),
    ("Softmax", 1, _softmax, []), ("LogSoftmax", 1, _softmax, []),
    ("Concat", 2, _concat, []), ("Split", 1, _axis_attr, []),
    ("Transpose", 1, _perm, []), ("Flatten", 1, _axis_attr, []),
    ("Reshape", 1, lambda r, k: {"allowzero": r.randint(0, 1)} if r.random() < 0.2 else {},
     [_shape_vec]),
    ("Squeeze", 1, _no_attrs, [_axes_vec]), ("Unsqueeze", 1, _no_attrs, [_axes_vec]),
    ("Slice", 1, _no_attrs, [lambda r, k: np.array([r.randint(-3, 3)], np.int64),
                             lambda r, k: np.array([r.choice([-1, 2, 9, 2**62])], np.int64),
                             lambda r, k: np.array([_axis(r, k)], np.int64)]),
    ("Gather", 1, _axis_attr, [lambda r, k: np.array(_ints(r, r.randint(0, 3), -3, 3), np.int64)]),
    ("ReduceMean", 1, _reduce, [_axes_vec]), ("ReduceSum", 1, _reduce, [_axes_vec]),
    ("ReduceMax", 1, _reduce, [_axes_vec]), ("ArgMax", 1, _argmax, []),
    ("Cast", 1, _cast, []), ("Clip", 1, _clipattrs,
                             [lambda r, k: np.array(r.choice([-1.0, 0.0]), np.float32),
                              lambda r, k: np.array(r.choice([1.0, 6.0, -5.0]), np.float32)]),
    ("LeakyRelu", 1, _leaky, []), ("Gelu", 1, _gelu, []),
    ("Pad", 1, _pad, [lambda r, k: np.array(_ints(r, 2 * k, -1, 2), np.int64)]),
    ("Expand", 1, _no_attrs, [_shape_vec]),
    ("Tile", 1, _no_attrs, [lambda r, k: np.array(_ints(r, k, 0, 3), np.int64)]),
    ("TopK", 1, _topk, [lambda r, k: np.array([r.randint(0, 3)], np.int64)]),
    ("CumSum", 1, _cumsum, [lambda r, k: np.array(_axis(r, k), np.int64)]),
    ("Shape", 1, lambda r, k: {"start": r.randint(-3, 3)} if r.random() < 0.3 else {}, []),
    ("ConstantOfShape", 0, _no_attrs, [lambda r, k: np.array(_ints(r, r.randint(0, 3), 0, 4), np.int64)]),
    ("Range", 0, _no_attrs, [lambda r, k: np.array(r.randint(-3, 3), np.int64),
                             lambda r, k: np.array(r.randint(-3, 9), np.int64),
                             lambda r, k: np.array(r.choice([1, 2, -1, 3]), np.int64)]),
    ("DepthToSpace", 1, _depth, []), ("SpaceToDepth", 1, lambda r, k: {"blocksize": r.randint(1, 3)}, []),
    ("Resize", 1, _resize, [lambda r, k: np.array([], np.float32),
                            lambda r, k: np.array([1.0] * max(k - 2, 0) + [2.0, 2.0][:k], np.float32)]),
    ("Dropout", 1, _no_attrs, []), ("Einsum", 2, lambda r, k: {"equation": r.choice(
        ["ij,jk->ik", "bij,bjk->bik", "i,i->", "ii->i", "...ij->...ji", "ab,cd"])}, []),
]
MS, ML = "com.microsoft", "ai.onnx.ml"
# (op, number of data inputs, attribute maker, constant-input makers, domain)
DOMAIN_OPS = [
    ("Gelu", 1, _no_attrs, [], MS), ("FastGelu", 2, _no_attrs, [], MS),
    ("BiasGelu", 2, _no_attrs, [], MS),
    ("QuickGelu", 1, lambda r, k: {"alpha": r.choice([1.702, 1.0, -3.0])}, [], MS),
    ("BiasAdd", 3, _no_attrs, [], MS),
    ("FusedMatMul", 2, lambda r, k: {"alpha": r.choice([1.0, 0.5]), "transA": r.randint(0, 1),
                                     "transB": r.randint(0, 1)}, [], MS),
    ("SkipLayerNormalization", 4, lambda r, k: {"epsilon": r.choice([1e-5, 1e-12])}, [], MS),
    ("Scaler", 1, lambda r, k: {"offset": [r.uniform(-1, 1) for _ in range(r.randint(1, 3))],
                                "scale": [r.uniform(-2, 2) for _ in range(r.randint(1, 3))]},
     [], ML),
    ("Normalizer", 1, lambda r, k: {"norm": r.choice(["MAX", "L1", "L2", "L3"])}, [], ML),
    ("Binarizer", 1, lambda r, k: {"threshold": r.choice([0.0, 0.5, -1.0])}, [], ML),
    ("LinearRegressor", 1, lambda r, k: {"coefficients": [r.uniform(-1, 1) for _ in range(
        r.choice([1, 2, 3, 4, 6, 8]))], "targets": r.randint(1, 2)}, [], ML),
]
OPS = [(*o, "") for o in OPS] + DOMAIN_OPS
OP_NAMES = [o[0] for o in OPS]


def _random_shape(rng, rank):
    return [rng.randint(1, 4) for _ in range(rank)]


def random_model(rng: random.Random) -> bytes:
    """1-3 random ops; inputs are graph inputs (random shape/dtype, sometimes symbolic dims) or
    initializers; attributes random around plausible values."""
    opset = rng.choice([13, 15, 17, 17, 17, 18, 19, 21])
    nodes, inputs, inits, values = [], [], [], []
    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def new_input(rank, dtype):
        name = fresh("in")
        shape = _random_shape(rng, rank)
        if rng.random() < 0.5:
            inits.append(numpy_helper.from_array(
                (np.random.default_rng(rng.randrange(2**31)).standard_normal(shape) * 3)
                .astype(helper.tensor_dtype_to_np_dtype(dtype)), name))
        else:
            decl = [d if rng.random() < 0.8 else rng.choice(["N", "S", None]) for d in shape]
            inputs.append(_vi(name, dtype, decl))
        values.append((name, rank, dtype))
        return name

    rank0 = rng.randint(0, 4)
    dtype0 = rng.choice(_FLOATS) if rng.random() < 0.85 else rng.choice(_ANY)
    domains = set()
    for _ in range(rng.randint(1, 3)):
        op, n_data, attr_fn, const_fns, domain = rng.choice(OPS) if rng.random() < 0.9 else \
            rng.choice(DOMAIN_OPS)
        if domain:
            domains.add(domain)
        rank = rank0
        names = []
        for _i in range(n_data):
            if values and rng.random() < 0.6:
                names.append(rng.choice(values)[0])
            else:
                names.append(new_input(rank if rng.random() < 0.8 else rng.randint(0, 4), dtype0))
        for fn in const_fns:
            if rng.random() < 0.05:
                names.append("")  # optional input left out
                continue
            arr = fn(rng, rank)
            cname = fresh("c")
            if rng.random() < 0.7:
                inits.append(numpy_helper.from_array(arr, cname))
            else:
                nodes.append(helper.make_node("Constant", [], [cname],
                                              value=numpy_helper.from_array(arr, cname + "v")))
            names.append(cname)
        attrs = {k: v for k, v in attr_fn(rng, rank).items() if not (isinstance(v, list) and not v)}
        n_out = {"Split": rng.randint(1, 3), "TopK": 2, "BatchNormalization": 1}.get(op, 1)
        outs = [fresh("o") for _ in range(n_out)]
        nodes.append(helper.make_node(op, names, outs, name=fresh("n"), domain=domain, **attrs))
        for o in outs:
            values.append((o, rank, dtype0))
    produced = {o for n in nodes for o in n.output}
    consumed = {i for n in nodes for i in n.input}
    final = [o for o in produced if o not in consumed] or [nodes[-1].output[0]]
    graph = helper.make_graph(nodes, "fuzz", inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in sorted(final)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, 1 if d == MS else rng.choice([1, 2, 3, 5])) for d in sorted(domains)])
    try:  # declare output types where onnx can infer them (so onnxruntime accepts the model)
        inferred = onnx.shape_inference.infer_shapes(model)
        known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
        for out in model.graph.output:
            if out.name in known and known[out.name].type.HasField("tensor_type"):
                out.type.CopyFrom(known[out.name].type)
    except Exception:
        pass
    for out in model.graph.output:
        if not out.type.HasField("tensor_type"):
            out.type.tensor_type.elem_type = dtype0
    return model.SerializeToString()


# --------------------------------------------------------------------------------------------
# Random PyTorch sources (for ``export``)

_LAYERS = [
    "torch.nn.Conv2d({c}, {c2}, {k}, padding={p}, stride={s})", "torch.nn.ReLU()",
    "torch.nn.BatchNorm2d({c})", "torch.nn.MaxPool2d({k}, stride=1, padding={p})",
    "torch.nn.AvgPool2d({k}, stride=1, padding={p})", "torch.nn.Sigmoid()", "torch.nn.GELU()",
    "torch.nn.Hardswish()", "torch.nn.Upsample(scale_factor={s})", "torch.nn.Dropout(0.5)",
    "torch.nn.Identity()", "torch.nn.Flatten()", "torch.nn.LayerNorm({c})",
    "torch.nn.Softmax(dim={d})", "torch.nn.LeakyReLU({a})", "torch.nn.PixelShuffle({s})",
]
_FORWARDS = [
    "return self.body(x)", "return self.body(x) + x", "return self.body(x).mean(dim={d})",
    "return torch.cat([self.body(x), x], dim={d})", "return self.body(x).flatten(1)",
    "return self.body(x)[:, :{k}]", "y = self.body(x)\n        return y * torch.sigmoid(y)",
    "return self.body(x).reshape(x.shape[0], -1)",
    "return self.body(x) if x.sum() > 0 else -x",  # data-dependent control flow
]


def random_torch(rng: random.Random) -> bytes:
    """The source of ``make()`` returning a random small module for input ``x`` of shape
    (N, C, H, W), with the example shape in ``SHAPE`` (layers and shapes often disagree)."""
    c = rng.randint(1, 4)
    layers = []
    cur = c
    for _ in range(rng.randint(1, 4)):
        tmpl = rng.choice(_LAYERS)
        c2 = rng.randint(1, 4) if rng.random() < 0.8 else cur
        layers.append(tmpl.format(c=cur, c2=c2, k=rng.randint(1, 3), p=rng.randint(0, 1),
                                  s=rng.randint(1, 2), d=rng.randint(-1, 3),
                                  a=rng.choice([0.01, 0.2, -1.0])))
        if tmpl.startswith("torch.nn.Conv2d"):
            cur = c2
    fwd = rng.choice(_FORWARDS).format(d=rng.randint(-1, 3), k=rng.randint(1, 3))
    shape = [rng.randint(1, 2), c if rng.random() < 0.9 else c + 1, rng.randint(1, 6),
             rng.randint(1, 6)]
    src = (f"import torch\n\nSHAPE = {shape}\n\n\nclass Net(torch.nn.Module):\n"
           f"    def __init__(self):\n        super().__init__()\n"
           f"        self.body = torch.nn.Sequential({', '.join(layers)})\n\n"
           f"    def forward(self, x):\n        {fwd}\n\n\n"
           f"def make():\n    torch.manual_seed(0)\n    return Net()\n")
    return src.encode()


def make_case(rng: random.Random, seeds: list[bytes], *, kind: str | None = None,
              verify_fraction: float = 0.05, convert_fraction: float = 0.15,
              generate_fraction: float = 0.3, ncnn_fraction: float = 0.08,
              tools_fraction: float = 0.12, export_fraction: float = 0.004) -> dict:
    """One case.  Fractions of actions for ONNX cases: verify, convert (to .py), generate, ncnn
    (three convert for one verify), tools (simplify/extract/edit alike), the rest inspect;
    ``export_fraction`` of all cases are ``torch`` cases (export)."""
    if kind is None:
        r = rng.random()
        kind = "torch" if r < export_fraction else ("bytes" if r < 0.5 + export_fraction / 2
                                                    else "model")
    if kind == "torch":
        return {"kind": kind, "data": random_torch(rng), "action": "export",
                "param": rng.randrange(2**32)}
    data = mutate(rng, rng.choice(seeds), seeds) if kind == "bytes" else random_model(rng)
    r = rng.random()
    edges = [("verify", verify_fraction), ("convert", convert_fraction),
             ("generate", generate_fraction), ("ncnn", ncnn_fraction * 0.75),
             ("verify_ncnn", ncnn_fraction * 0.25), ("simplify", tools_fraction / 3),
             ("extract", tools_fraction / 3), ("edit", tools_fraction / 3)]
    action = "inspect"
    for name, frac in edges:
        if r < frac:
            action = name
            break
        r -= frac
    return {"kind": kind, "data": data, "action": action, "param": rng.randrange(2**32)}


# --------------------------------------------------------------------------------------------
# Running one case (inside a worker process)

def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "nnport" in f.filename.replace("\\", "/")]
    where = own[-1] if own else (frames[-1] if frames else None)
    loc = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{type(exc).__name__} at {loc}"


_HOSTILE_NAMES = ["", " ", "a b", "../x", "x\ny", "\u00e9\u4e2d", "1abc", "def", "x" * 300]


def _names(data: bytes) -> tuple[list[str], list[str]]:
    """(graph inputs, every tensor name) of a model, or ([], []) when it does not parse."""
    try:
        m = onnx.load_from_string(data)
        ins = [i.name for i in m.graph.input]
        names = ins + [o for n in m.graph.node for o in n.output] + \
            [t.name for t in m.graph.initializer]
        return ins, [n for n in names if n]
    except Exception:
        return [], []


def _concrete_shapes(data: bytes, r: random.Random) -> dict:
    """Concrete sizes for the symbolic dims of the inputs (ncnn needs them)."""
    try:
        m = onnx.load_from_string(data)
    except Exception:
        return {}
    out = {}
    for i in m.graph.input:
        if not i.type.HasField("tensor_type") or not i.type.tensor_type.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else r.randint(1, 3)
                for d in i.type.tensor_type.shape.dim]
        if any(not d.HasField("dim_value") for d in i.type.tensor_type.shape.dim):
            out[i.name] = tuple(dims)
    return out


def _mismatch_detail(reports: dict, shapes: dict) -> str:
    """What a mismatch reproducer records: the input shapes the case chose (``--param`` replays
    them), the inputs verify fed, and each verify report's lines."""
    out = [f"input_shapes: {json.dumps({k: list(v) for k, v in shapes.items()})}"]
    for what, rep in reports.items():
        if rep is None:
            continue
        out.append(f"{what}: {rep.a} vs {rep.b}, seed {rep.seed}, "
                   f"{'match' if rep.ok else 'MISMATCH'}")
        out.append("  inputs: " + ", ".join(f"{k} {v['dtype']}{v['shape']}"
                                            for k, v in rep.inputs.items()))
        out.extend(rep.lines())
    return "\n".join(out)


def _pick(r: random.Random, names: list[str], k: int) -> list[str]:
    return [r.choice(names) if names and r.random() < 0.9 else r.choice(_HOSTILE_NAMES)
            for _ in range(k)]


def _run_more(case: dict, src: Path, work: Path) -> str:
    """The actions beyond ONNX -> PyTorch: ncnn, the tools, export."""
    import nnport

    r = random.Random(case.get("param", 0))
    action, data = case["action"], case["data"]
    if action in ("ncnn", "verify_ncnn"):
        shapes = _concrete_shapes(data, r) if r.random() < 0.5 else {}
        res = nnport.convert(str(src), work / "model.param", verify=action == "verify_ncnn",
                             input_shapes=shapes)
        if res.report is None or res.report.ok:
            return "ok"
        return "mismatch", _mismatch_detail({"convert(verify=True)": res.report}, shapes)
    ins, names = _names(data)
    out = work / "out.onnx"
    if action == "simplify":
        shapes = {n: tuple(r.choice([None, 1, 2, 3]) for _ in range(r.randint(0, 4)))
                  for n in ins if r.random() < 0.3}
        nnport.simplify(str(src), out, input_shapes={k: v for k, v in shapes.items()
                                                     if None not in v} or None)
    elif action == "extract":
        nnport.extract(str(src), out, inputs=_pick(r, names, r.randint(0, 2)),
                       outputs=_pick(r, names, r.randint(1, 2)))
    elif action == "edit":
        kw = {}
        if r.random() < 0.5:
            kw["rename"] = [f"{o}={n}" for o, n in zip(_pick(r, names, r.randint(1, 2)),
                                                        _pick(r, ["new1", "new2"], 2))]
        if r.random() < 0.4 and ins:
            kw["input_shapes"] = {r.choice(ins): tuple(r.choice([None, 1, 2, 3, 0])
                                                       for _ in range(r.randint(0, 4)))}
        if r.random() < 0.3:
            kw["opset"] = r.choice([7, 9, 11, 13, 17, 18, 21, 23, 99, 0])
        if r.random() < 0.4:
            kw["outputs"] = _pick(r, names, r.randint(1, 2))
        from nnport.tools import edit

        edit(str(src), out, **kw)
    elif action == "export":
        import ast

        shape = ast.literal_eval(data.decode().split("SHAPE = ", 1)[1].split("\n", 1)[0])
        nnport.export(f"{src}:make", out, input_shapes={"x": tuple(shape)},
                      exporter=r.choice(["torchscript", "torchscript", "dynamo"]),
                      dynamic={"x": {0: "batch"}} if r.random() < 0.3 else None)
    else:
        raise ValueError(f"unknown action {action!r}")
    return "ok"


class _Alarm(BaseException):
    pass


def run_case(case: dict, workdir: str, timeout: int = 60) -> dict:
    """Run one case in this process; returns {"outcome": ..., "detail": ...}.  Outcomes:
    ok, mismatch, error:<NnportError subclass> (fine); failure:<signature> (not fine)."""
    import signal

    import nnport
    from nnport.convert import generate_torch

    work = Path(workdir)
    for p in work.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink()
    src = work / ("case.py" if case["kind"] == "torch" else "case.onnx")
    src.write_bytes(case["data"])
    dst = work / "model.py"

    def on_alarm(signum, frame):
        raise _Alarm()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    try:
        action = case["action"]
        outcome = "ok"
        if action == "__crash__":  # self-test of the harness: a real segfault
            import ctypes
            ctypes.string_at(0)
        elif action == "__hang__":
            while True:
                time.sleep(0.1)
        elif action == "inspect":
            nnport.inspect(str(src))
        elif action == "generate":
            source, _ = generate_torch(str(src))
            compile(source, "model.py", "exec")
        elif action == "convert":
            nnport.convert(str(src), dst, verify=False)
        elif action == "verify":
            res = nnport.convert(str(src), dst, verify=True)
            rep = nnport.verify(str(src), dst)
            outcome = "ok" if (res.ok and rep.ok) else "mismatch"
            if outcome == "mismatch":
                return {"outcome": outcome, "detail": _mismatch_detail(
                    {"convert(verify=True)": res.report, "verify(onnx, model.py)": rep}, {})}
        else:
            outcome = _run_more(case, src, work)
            if isinstance(outcome, tuple):
                return {"outcome": outcome[0], "detail": outcome[1]}
        return {"outcome": outcome, "detail": ""}
    except _Alarm:
        return {"outcome": "failure:timeout", "detail": f"no result within {timeout} s"}
    except nnport.NnportError as exc:
        msg = str(exc)
        if "\n" in msg or not msg.strip():
            return {"outcome": f"failure:NnportError message not one line ({type(exc).__name__})",
                    "detail": repr(msg)}
        return {"outcome": f"error:{type(exc).__name__}", "detail": msg}
    except BaseException as exc:  # noqa: BLE001 -- this is what the fuzzer looks for
        return {"outcome": f"failure:{_signature(exc)}",
                "detail": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _worker_main(conn, mem_limit: int, timeout: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import resource
    import warnings

    if mem_limit:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    import torch

    torch.set_num_threads(1)
    import onnxruntime  # noqa: F401  (warm: imports cost seconds)
    import nnport  # noqa: F401
    import nnport.convert  # noqa: F401

    onnxruntime.set_default_logger_severity(4)
    workdir = tempfile.mkdtemp(prefix="nnport-fuzz-")
    conn.send("ready")
    try:
        while True:
            case = conn.recv()
            if case is None:
                break
            conn.send(run_case(case, workdir, timeout))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Worker:
    """A child process that runs cases; a crash or hang is an outcome, and the child is
    replaced."""

    def __init__(self, mem_limit: int = 8 << 30, timeout: int = 60):
        self.mem_limit, self.timeout = mem_limit, timeout
        self.proc = None
        self.case = None
        self.started = 0.0
        self._start()

    def _start(self):
        # A fresh interpreter running this file (not fork: torch and onnxruntime hold threads),
        # talking over a socket pair; stdout/stderr stay free for library noise.
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", str(child.fileno()),
             "--mem-limit-gb", str(self.mem_limit / (1 << 30)), "--timeout", str(self.timeout)],
            pass_fds=[child.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env)
        child.close()
        self.conn = Connection(parent.detach())
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, case):
        self.case = case
        self.started = time.monotonic()
        self.conn.send(case)

    def collect(self) -> dict:
        """Block until the current case ends (result, crash or hard timeout)."""
        deadline = self.started + self.timeout + 30
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._restart("failure:hang (worker killed)", "the alarm did not fire")
            try:
                if self.conn.poll(min(left, 1.0)):
                    result = self.conn.recv()
                    self.case = None
                    return result
            except (EOFError, OSError):
                pass
            if not self.alive():
                code = self.proc.returncode
                what = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
                return self._restart(f"failure:crash ({what})", f"worker died: {what}")

    def run(self, case) -> dict:
        self.submit(case)
        return self.collect()

    def _restart(self, outcome, detail) -> dict:
        self.kill()
        self._start()
        self.case = None
        return {"outcome": outcome, "detail": detail}

    def kill(self):
        if self.proc is not None and self.alive():
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.conn.close()

    def close(self):
        try:
            self.conn.send(None)
            self.proc.wait(10)
        except Exception:
            pass
        self.kill()


# --------------------------------------------------------------------------------------------
# Driver


def save_reproducer(out: Path, case: dict, result: dict) -> Path:
    """``<hash>.onnx`` (or ``.py``) + ``<hash>.txt`` under ``out``.  A failure's hash is its
    signature's (one reproducer per distinct failure); a mismatch's is its action's and model's
    (every mismatch is kept: they share one outcome)."""
    out.mkdir(parents=True, exist_ok=True)
    key = result["outcome"].encode()
    if result["outcome"] == "mismatch":
        key += f":{case['action']}:{case.get('param', 0)}:".encode() + case["data"]
    sig = hashlib.sha1(key).hexdigest()[:10]
    model = out / f"{sig}.{'py' if case['kind'] == 'torch' else 'onnx'}"
    model.write_bytes(case["data"])
    where = f"case: {case['index']}\n" if "index" in case else ""
    (out / f"{sig}.txt").write_text(
        f"outcome: {result['outcome']}\naction: {case['action']}\nkind: {case['kind']}\n"
        f"{where}param: {case.get('param', 0)}\n"
        f"reproduce: .venv/bin/python benchmarks/fuzz.py --replay {model} "
        f"--action {case['action']} --param {case.get('param', 0)}\n\n{result['detail']}\n")
    return model


def fuzz(n_cases: int, *, seed: int = 0, workers: int = 2, out: str | None = "fuzz-findings",
         kind: str | None = None, verify_fraction: float = 0.05, convert_fraction: float = 0.15,
         generate_fraction: float = 0.3, ncnn_fraction: float = 0.08,
         tools_fraction: float = 0.12, export_fraction: float = 0.004, timeout: int = 60,
         mem_limit: int = 8 << 30, progress: bool = False,
         max_seconds: float | None = None) -> dict:
    """Run ``n_cases`` cases on ``workers`` processes; returns {"counts", "failures", ...}.
    Case i is generated from ``random.Random(f"{seed}:{i}")``, so any case can be regenerated."""
    seeds = seed_models()
    pool = [Worker(mem_limit, timeout) for _ in range(workers)]
    counts: collections.Counter = collections.Counter()
    by_action: collections.Counter = collections.Counter()
    failures: dict[str, dict] = {}
    mismatches: list[dict] = []
    t0 = time.monotonic()
    next_i = 0
    busy: dict = {}

    def feed(w):
        nonlocal next_i
        if next_i >= n_cases:
            return
        if max_seconds is not None and time.monotonic() - t0 > max_seconds:
            return  # out of time: the cases run so far are the result
        rng = random.Random(f"{seed}:{next_i}")
        case = make_case(rng, seeds, kind=kind, verify_fraction=verify_fraction,
                         convert_fraction=convert_fraction, generate_fraction=generate_fraction,
                         ncnn_fraction=ncnn_fraction, tools_fraction=tools_fraction,
                         export_fraction=export_fraction)
        case["index"] = next_i
        next_i += 1
        w.submit(case)
        busy[w.conn] = w

    try:
        for w in pool:
            feed(w)
        done = 0
        while busy:
            ready = mp_wait(list(busy), timeout=1.0)
            candidates = [busy[c] for c in ready]
            # a crashed or hung worker never becomes readable: look for those too
            for w in list(busy.values()):
                if w not in candidates and (not w.alive() or
                                            time.monotonic() - w.started > w.timeout + 30):
                    candidates.append(w)
            for w in candidates:
                case = w.case
                del busy[w.conn]
                result = w.collect()
                counts[result["outcome"]] += 1
                by_action[(case["kind"], case["action"], result["outcome"].split(":")[0])] += 1
                if result["outcome"] == "mismatch":
                    path = save_reproducer(Path(out), case, result) if out else None
                    mismatches.append({"case": case["index"], "action": case["action"],
                                       "kind": case["kind"], "reproducer": str(path),
                                       "detail": result["detail"][-2000:]})
                    if progress:
                        print(f"MISMATCH (case {case['index']}, {case['kind']}/"
                              f"{case['action']}) -> {path}", flush=True)
                if result["outcome"].startswith("failure:") and result["outcome"] not in failures:
                    path = save_reproducer(Path(out), case, result) if out else None
                    failures[result["outcome"]] = {"case": case["index"], "action": case["action"],
                                                   "kind": case["kind"], "reproducer": str(path),
                                                   "detail": result["detail"][-2000:]}
                    if progress:
                        print(f"NEW FAILURE {result['outcome']} (case {case['index']}, "
                              f"{case['kind']}/{case['action']}) -> {path}", flush=True)
                done += 1
                if progress and done % 1000 == 0:
                    rate = done / (time.monotonic() - t0)
                    print(f"  {done:,}/{n_cases:,} cases, {rate:.0f}/s", flush=True)
                feed(w)
    finally:
        for w in pool:
            w.close()
    return {"cases": sum(counts.values()), "requested": n_cases,
            "seconds": time.monotonic() - t0, "counts": dict(counts),
            "by_action": {"/".join(k): v for k, v in sorted(by_action.items())},
            "failures": failures, "mismatches": mismatches}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="fuzz-findings", help="folder for reproducers")
    ap.add_argument("--kind", choices=["bytes", "model", "torch"], default=None)
    ap.add_argument("--verify-fraction", type=float, default=0.05)
    ap.add_argument("--convert-fraction", type=float, default=0.15)
    ap.add_argument("--generate-fraction", type=float, default=0.3)
    ap.add_argument("--ncnn-fraction", type=float, default=0.08)
    ap.add_argument("--tools-fraction", type=float, default=0.12,
                    help="simplify, extract and edit, a third each")
    ap.add_argument("--export-fraction", type=float, default=0.004,
                    help="cases that export a random PyTorch module")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per case")
    ap.add_argument("--mem-limit-gb", type=float, default=8.0)
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop starting new cases after this long (the counts say how many ran)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--replay", help="run one saved model in this process")
    ap.add_argument("--action", choices=ACTIONS, default="convert")
    ap.add_argument("--param", type=int, default=0,
                    help="with --replay: the case's random choices (names, shapes) seed")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # worker mode (socket fd)
    args = ap.parse_args(argv)
    if args.serve is not None:
        from multiprocessing.connection import Connection

        _worker_main(Connection(args.serve), int(args.mem_limit_gb * (1 << 30)), args.timeout)
        return 0
    if args.replay:
        work = tempfile.mkdtemp(prefix="nnport-replay-")
        try:
            kind = "torch" if args.replay.endswith(".py") else "replay"
            res = run_case({"kind": kind, "data": Path(args.replay).read_bytes(),
                            "action": args.action, "param": args.param}, work, args.timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(res["outcome"])
        print(res["detail"])
        return 1 if res["outcome"].startswith("failure:") else 0
    res = fuzz(args.cases, seed=args.seed, workers=args.workers, out=args.out, kind=args.kind,
               verify_fraction=args.verify_fraction, convert_fraction=args.convert_fraction,
               generate_fraction=args.generate_fraction, ncnn_fraction=args.ncnn_fraction,
               tools_fraction=args.tools_fraction, export_fraction=args.export_fraction,
               timeout=args.timeout,
               mem_limit=int(args.mem_limit_gb * (1 << 30)), progress=not args.json,
               max_seconds=args.max_seconds)
    if args.json:
        print(json.dumps(res, indent=1))
        return 1 if res["failures"] else 0
    print(f"\n{res['cases']:,} cases in {res['seconds']:.0f} s "
          f"({res['cases'] / max(res['seconds'], 1e-9):.0f}/s), seed {args.seed}")
    print("outcomes:")
    for k, v in sorted(res["counts"].items(), key=lambda kv: -kv[1]):
        print(f"  {v:>8,}  {k}")
    print("by kind/action/outcome:")
    for k, v in res["by_action"].items():
        print(f"  {v:>8,}  {k}")
    if res["mismatches"] and args.out:
        print(f"\n{len(res['mismatches'])} mismatch reproducer(s) under {args.out}")
    if res["failures"]:
        print(f"\n{len(res['failures'])} distinct failure(s):")
        for sig, f in res["failures"].items():
            print(f"- {sig}: case {f['case']} ({f['kind']}/{f['action']}), reproducer "
                  f"{f['reproducer']}")
            print("    " + f["detail"].strip().splitlines()[-1][:300])
    else:
        print("\nno failures")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
