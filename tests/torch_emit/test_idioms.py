"""Activations and norms that exporters write out element by element print as the ``F.``/``nn.``
call a person writes (SiLU, Mish, HardSwish, GELU tanh, LayerNorm, RMSNorm, bias-free Linear),
and the numbers still match onnxruntime."""
from __future__ import annotations

import io
import math
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import assert_matches_ort


def _graph(nodes, inits: dict, shape=(2, 5, 16), opset=17, extra_out=()):
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *shape[1:]])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", *extra_out)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _feeds(shape=(2, 5, 16)):
    return {"x": np.random.default_rng(0).normal(0, 2, shape).astype(np.float32)}


def _check(model, present: str, absent: tuple = ()):
    src = generate_torch(model)[0]
    fwd = src[src.index("def forward"):]
    assert present in fwd, fwd
    for a in absent:
        assert a not in fwd, fwd
    assert_matches_ort(model, _feeds())
    return fwd


N = helper.make_node


@pytest.mark.parametrize("swap", [False, True])
def test_silu(swap):
    mul = N("Mul", ["s", "x"] if swap else ["x", "s"], ["y"])
    _check(_graph([N("Sigmoid", ["x"], ["s"]), mul], {}), "F.silu(x)", ("torch.sigmoid",))


def test_sigmoid_used_elsewhere_is_not_silu():
    m = _graph([N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"], ["y"])], {}, extra_out=("s",))
    _check(m, "torch.sigmoid", ("F.silu",))


def test_mish():
    m = _graph([N("Softplus", ["x"], ["sp"]), N("Tanh", ["sp"], ["t"]), N("Mul", ["t", "x"], ["y"])], {})
    _check(m, "F.mish(x)", ("torch.tanh",))


def test_hardswish_from_hardsigmoid():
    m = _graph([N("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5), N("Mul", ["x", "h"], ["y"])], {})
    _check(m, "F.hardswish(x)", ("hardsigmoid",))


@pytest.mark.parametrize("div_first", [False, True])
def test_hardswish_from_relu6(div_first):
    c = {"three": 3.0, "zero": 0.0, "six": 6.0}
    nodes = [N("Add", ["x", "three"], ["a"]), N("Clip", ["a", "zero", "six"], ["c"])]
    if div_first:
        nodes += [N("Div", ["c", "six"], ["d"]), N("Mul", ["x", "d"], ["y"])]
    else:
        nodes += [N("Mul", ["x", "c"], ["m"]), N("Div", ["m", "six"], ["y"])]
    _check(_graph(nodes, c), "F.hardswish(x)", ("clamp", "relu6"))


def test_relu6_times_other_is_not_hardswish():
    c = {"three": 3.0, "zero": 0.0, "six": 6.0}
    nodes = [N("Add", ["x", "three"], ["a"]), N("Clip", ["a", "zero", "six"], ["c"]),
             N("Mul", ["x", "c"], ["m"]), N("Div", ["m", "three"], ["y"])]
    _check(_graph(nodes, c), "relu6", ("hardswish",))


@pytest.mark.parametrize("cube", ["pow", "mul"])
def test_gelu_tanh(cube):
    c = {"k": 0.044715, "s": math.sqrt(2 / math.pi), "one": 1.0, "half": 0.5, "three": 3.0}
    nodes = []
    if cube == "pow":
        nodes.append(N("Pow", ["x", "three"], ["x3"]))
    else:
        nodes += [N("Mul", ["x", "x"], ["x2"]), N("Mul", ["x", "x2"], ["x3"])]
    nodes += [N("Mul", ["k", "x3"], ["kx3"]), N("Add", ["x", "kx3"], ["inner"]),
              N("Mul", ["s", "inner"], ["si"]), N("Tanh", ["si"], ["t"]),
              N("Add", ["t", "one"], ["a"]), N("Mul", ["half", "a"], ["h"]), N("Mul", ["x", "h"], ["y"])]
    _check(_graph(nodes, c), "F.gelu(x, approximate='tanh')", ("torch.tanh",))


def test_gelu_tanh_wrong_constant_is_left_alone():
    c = {"k": 0.05, "s": math.sqrt(2 / math.pi), "one": 1.0, "half": 0.5, "three": 3.0}
    nodes = [N("Pow", ["x", "three"], ["x3"]), N("Mul", ["k", "x3"], ["kx3"]),
             N("Add", ["x", "kx3"], ["inner"]), N("Mul", ["s", "inner"], ["si"]),
             N("Tanh", ["si"], ["t"]), N("Add", ["t", "one"], ["a"]),
             N("Mul", ["half", "a"], ["h"]), N("Mul", ["x", "h"], ["y"])]
    _check(_graph(nodes, c), "torch.tanh", ("gelu",))


def _layer_norm_nodes(axes, weight=True, bias=True, opset=17):
    ax = {"axes": axes} if opset < 18 else {}
    ai = ["axes"] if opset >= 18 else []
    nodes = [N("ReduceMean", ["x", *ai], ["mu"], **ax), N("Sub", ["x", "mu"], ["d"]),
             N("Pow", ["d", "two"], ["d2"]), N("ReduceMean", ["d2", *ai], ["var"], **ax),
             N("Add", ["var", "eps"], ["ve"]), N("Sqrt", ["ve"], ["sd"]),
             N("Div", ["d", "sd"], ["n" if weight else "y"])]
    if weight:
        nodes.append(N("Mul", ["n", "w"], ["nw" if bias else "y"]))
    if bias:
        nodes.append(N("Add", ["nw", "b"], ["y"]))
    rng = np.random.default_rng(1)
    inits = {"two": 2.0, "eps": 1e-5, "w": rng.uniform(0.5, 1.5, 16), "b": rng.normal(0, .1, 16)}
    if opset >= 18:
        inits["axes"] = np.array(axes)
    return nodes, inits


@pytest.mark.parametrize("opset", [13, 18])
def test_layer_norm_decomposition(opset):
    nodes, inits = _layer_norm_nodes([-1], opset=opset)
    if opset >= 18:  # the axes input is int64
        inits = dict(inits)
        axes = inits.pop("axes")
    m = _graph(nodes, inits, opset=opset)
    if opset >= 18:
        m.graph.initializer.append(numpy_helper.from_array(axes.astype(np.int64), "axes"))
    src = generate_torch(m)[0]
    assert "nn.LayerNorm(16)" in src and "torch.sqrt" not in src, src
    assert_matches_ort(m, _feeds())


def test_layer_norm_without_affine():
    nodes, inits = _layer_norm_nodes([-1], weight=False, bias=False)
    _check(_graph(nodes, inits), "F.layer_norm(x, [16], eps=", ("torch.sqrt",))


def test_layer_norm_over_a_leading_axis_stays_written_out():
    nodes, inits = _layer_norm_nodes([1], weight=False, bias=False)
    _check(_graph(nodes, inits), "torch.sqrt", ("layer_norm",))


@pytest.mark.parametrize("form", ["div", "reciprocal", "one_over"])
def test_rms_norm_decomposition(form):
    nodes = [N("Mul", ["x", "x"], ["x2"]), N("ReduceMean", ["x2"], ["ms"], axes=[-1]),
             N("Add", ["ms", "eps"], ["me"]), N("Sqrt", ["me"], ["r"])]
    if form == "div":
        nodes.append(N("Div", ["x", "r"], ["n"]))
    else:
        nodes.append(N("Reciprocal", ["r"], ["inv"]) if form == "reciprocal"
                     else N("Div", ["one", "r"], ["inv"]))
        nodes.append(N("Mul", ["x", "inv"], ["n"]))
    nodes.append(N("Mul", ["w", "n"], ["y"]))
    inits = {"eps": 1e-6, "one": 1.0, "w": np.random.default_rng(2).uniform(0.5, 1.5, 16)}
    _check(_graph(nodes, inits, opset=17), "(x)", ("torch.sqrt", "torch.mean"))
    src = generate_torch(_graph(nodes, inits, opset=17))[0]
    assert "nn.RMSNorm(16, eps=1.0e-06)" in src, src


def test_matmul_without_bias_is_linear():
    w = np.random.default_rng(3).normal(0, 1, (16, 8)).astype(np.float32)
    m = _graph([N("MatMul", ["x", "fc.weight"], ["y"], name="/fc/MatMul")], {"fc.weight": w})
    fwd = _check(m, "self.fc(x)", (" @ ",))
    src = generate_torch(m)[0]
    assert "nn.Linear(16, 8, bias=False)" in src


# ---- the same idioms from a PyTorch model, through the TorchScript exporter -----------------

class _T5Norm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.norm = _T5Norm(32)
        self.fc2 = nn.Linear(32, 16, bias=False)
        self.ln = nn.LayerNorm(16)

    def forward(self, x):
        y = self.norm(F.mish(F.silu(self.fc1(x))))
        y = self.fc2(F.gelu(F.hardswish(y), approximate="tanh"))
        return self.ln(y)


@pytest.mark.parametrize("opset", [13, 17])
def test_torchscript_export_reads_like_the_original(opset):
    torch.manual_seed(0)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Net().eval(), (torch.randn(2, 5, 16),), buf, dynamo=False,
                          opset_version=opset, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b", 1: "t"}})
    model = onnx.load_from_string(buf.getvalue())
    src = generate_torch(model)[0]
    fwd = src[src.index("def forward"):]
    for call in ("F.silu(", "F.mish(", "self.norm(", "F.hardswish(", "approximate='tanh'",
                 "self.fc2(", "self.ln("):
        assert call in fwd, (call, fwd)
    for gone in ("torch.sigmoid", "torch.tanh", "torch.sqrt", " @ "):
        assert gone not in fwd, (gone, fwd)
    assert "nn.RMSNorm(32, eps=1.0e-06)" in src and "nn.LayerNorm(16)" in src
    assert_matches_ort(model, {"x": np.random.default_rng(4).normal(0, 1, (3, 7, 16)).astype(np.float32)})
