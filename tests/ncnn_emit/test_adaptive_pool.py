"""Adaptive pooling whose output size does not divide the input size: torch's dynamo exporter
writes it as Transpose -> rank-6 GatherND -> Where -> Gather/Add or ReduceMean -> Div
(``legalize/adaptive_pool.py`` recognizes the region by its numbers), converted to one
Pooling1D/Pooling/Pooling3D layer with 7=adaptive_pooling; a region that only looks alike is
left alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches, onnx_matches  # noqa: E402


def _types(text: str) -> list[str]:
    return [ln.split()[0] for ln in text.splitlines()[2:] if ln.strip()]


def _adaptive_layers(text: str) -> list[str]:
    """The ncnn layers of the .param that pool adaptively (7=1)."""
    return [ln for ln in text.splitlines()[2:] if ln.split() and "7=1" in ln.split()[6:]
            and ln.split()[0].startswith("Pooling")]


class Pools(nn.Module):
    def forward(self, x, q, e):
        return (F.adaptive_avg_pool2d(x, (7, 6)),  # neither axis divides 13
                F.adaptive_avg_pool2d(x, 1),
                F.adaptive_avg_pool2d(x, (None, 3)),  # one axis kept
                F.adaptive_avg_pool2d(x, (5, None)),
                nn.AdaptiveAvgPool2d((2, 13))(x),
                F.adaptive_avg_pool2d(e, (4, 6)),  # divides: an AveragePool
                F.adaptive_avg_pool1d(q, 5),
                F.adaptive_avg_pool1d(q, 7),
                F.adaptive_avg_pool1d(q, 1),
                F.adaptive_avg_pool1d(q, 6))  # divides


def test_adaptive_avg_pool_1d_and_2d_of_the_dynamo_export(tmp_path):
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, Pools(), (torch.randn(1, 16, 13, 13), torch.randn(1, 12, 24),
                                            torch.randn(1, 4, 12, 12)),
                        layers=["Pooling", "Pooling1D"], rtol=1e-5, atol=1e-5, dynamo=True)
    found = _adaptive_layers(text)
    # (7, 6), (None, 3), (5, None), (2, 13); 1-D to 5 and 7 (Pooling1D: the Unsqueeze and
    # Squeeze around the export's 2-D region are part of the pool)
    assert len(found) == 6, text
    assert sum(ln.startswith("Pooling1D") for ln in found) == 2, text
    assert any("8=6" in ln and "18=7" in ln for ln in found), text
    assert "Gather" not in _types(text) and "GatherND" not in _types(text)


class Batch(nn.Module):
    def forward(self, x, q):
        return F.adaptive_avg_pool2d(x, (5, 3)), F.adaptive_avg_pool1d(q, 7)


def test_adaptive_avg_pool_of_a_batch_of_two(tmp_path):
    """A batch of 2 is pooled as (N*C, spatial) channels."""
    torch.manual_seed(1)
    text = ncnn_matches(tmp_path, Batch(), (torch.randn(2, 8, 13, 11), torch.randn(2, 12, 24)),
                        layers=["Pooling", "Pooling1D"], rtol=1e-5, atol=1e-5, dynamo=True)
    assert len(_adaptive_layers(text)) == 2, text


class One(nn.Module):
    def forward(self, x):
        return F.adaptive_avg_pool2d(x, (7, 6))


def _export_one(path):
    torch.onnx.export(One().eval(), (torch.randn(1, 8, 13, 13),), str(path), dynamo=True,
                      optimize=True, input_names=["x"], output_names=["y"])
    import onnx
    return onnx.load(str(path))


@pytest.mark.parametrize("what", ["counts", "indices"])
def test_a_region_that_is_not_adaptive_pooling_is_left_alone(tmp_path, what):
    """The exported region with one constant changed: the divisor of one output (by 0.5%) or
    one gathered position moved to the next window.  It is not replaced: the conversion then
    fails on the gather as before, never with other numbers."""
    import onnx
    import onnxruntime as ort

    from nnport.convert import convert
    from nnport.errors import ConversionError

    m = _export_one(tmp_path / "good.onnx")
    inits = {t.name: t for t in m.graph.initializer}
    if what == "counts":
        div = next(n for n in m.graph.node if n.op_type == "Div")
        t = inits[div.input[1]]
        k = numpy_helper.to_array(t).copy()
        k.flat[3] *= 1.005
    else:
        gnd = next(n for n in m.graph.node if n.op_type == "GatherND")
        t = inits[gnd.input[1]]
        k = numpy_helper.to_array(t).copy()  # (7, 3, 6, 3, 2): (oh, kh, ow, kw, [h, w])
        k[2, 0, 1, 0] = k[5, 0, 4, 0]
    t.CopyFrom(numpy_helper.from_array(k, t.name))
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    x = np.random.default_rng(0).standard_normal((1, 8, 13, 13)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None,
                                                                                 {"x": x})[0]
    try:
        convert(path, tmp_path / "m.param", verify=False)
    except ConversionError as e:
        assert "\n" not in str(e) and "GatherND" in str(e), str(e)
        assert not (tmp_path / "m.param").exists()
        return
    from nnport.ncnn_emit.runner import NcnnRunner

    got = NcnnRunner(tmp_path / "m.param").run({"x": x})[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    assert not _adaptive_layers((tmp_path / "m.param").read_text())


# ---- regions written by hand: 3-D (the exporters refuse it), ReduceSum --------------------
def _region(x_shape, out, wrong=None):
    """ONNX nodes and constants of an adaptive average pool of ``x`` written as the dynamo
    exporter writes one: spatial axes first, one GatherND of every window's positions (padded
    to the largest window), back to (N, C, o1, k1, o2, k2...), the padding masked to 0, summed
    over the k axes, divided by the window sizes.  ``wrong``: "counts" one window size off,
    "indices" the first window's first position reads the last position instead."""
    nsp = len(out)
    lens = x_shape[2:]
    wins = [[((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)] for n, o in zip(lens, out)]
    ks = [max(e - s for s, e in w) for w in wins]
    grid = [d for o, k in zip(out, ks) for d in (o, k)]  # o1, k1, o2, k2, ...
    idx = np.zeros(grid + [nsp], np.int64)
    mask = np.zeros(grid, bool)
    counts = np.ones(out, np.float32)
    for pos in np.ndindex(*grid):
        for a in range(nsp):
            s, e = wins[a][pos[2 * a]]
            j = s + pos[2 * a + 1]
            idx[pos + (a,)] = min(j, e - 1)
            mask[pos] |= j >= e
    for o in np.ndindex(*out):
        counts[o] = np.prod([wins[a][o[a]][1] - wins[a][o[a]][0] for a in range(nsp)])
    if wrong == "counts":
        counts.flat[1] += 1
    elif wrong == "indices":
        idx[(0,) * (2 * nsp)] = [n - 1 for n in lens]
    perm_in = list(range(2, 2 + nsp)) + [0, 1]
    r = 2 * nsp
    perm_out = [r, r + 1] + list(range(r))
    k_axes = np.array([3 + 2 * a for a in range(nsp)], np.int64)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=perm_in),
             helper.make_node("GatherND", ["xt", "idx"], ["g"]),
             helper.make_node("Transpose", ["g"], ["gt"], perm=perm_out),
             helper.make_node("Where", ["mask", "zero", "gt"], ["w"]),
             helper.make_node("ReduceSum", ["w", "k_axes"], ["s"], keepdims=0),
             helper.make_node("Div", ["s", "counts"], ["y"])]
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("idx", idx), ("mask", mask), ("counts", counts), ("k_axes", k_axes),
              ("zero", np.array(0.0, np.float32))]]
    return nodes, inits


@pytest.mark.parametrize("x_shape,out,layer", [
    ((1, 6, 11, 9), (4, 5), "Pooling"),
    ((1, 3, 5, 7, 9), (2, 3, 4), "Pooling3D"),
    ((2, 3, 5, 7, 9), (3, 7, 4), "Pooling3D"),  # a rank-5 batch of 2: held as N*C channels
])
def test_hand_written_2d_and_3d_regions(tmp_path, x_shape, out, layer):
    nodes, inits = _region(x_shape, out)
    x = np.random.default_rng(2).standard_normal(x_shape).astype(np.float32)
    text = onnx_matches(tmp_path, nodes, {"x": x}, inits=inits, layers=[layer], opset=18,
                        rtol=1e-5, atol=1e-5)
    (ln,) = _adaptive_layers(text)
    assert "0=1" in ln.split()
    assert "GatherND" not in _types(text)


def _model(nodes, inits, x_shape):
    import onnx

    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     list(x_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return onnx.shape_inference.infer_shapes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))


@pytest.mark.parametrize("wrong", ["counts", "indices"])
def test_the_pass_alone_replaces_only_what_pools(wrong):
    """Without the ncnn probe (the model's own constants and shapes): the region becomes one
    nnport::AdaptivePool node; with one window size off or one position moved it stays."""
    from nnport.io import load_model
    from nnport.ncnn_emit.legalize.adaptive_pool import fuse_adaptive_pools

    shape = (1, 4, 13, 10)
    model = load_model(_model(*_region(shape, (7, 3)), shape))
    res = fuse_adaptive_pools(model)
    assert res.modified and res.model is model
    (node,) = list(model.graph)
    assert (node.domain, node.op_type) == ("nnport", "AdaptivePool")
    assert node.attributes["mode"].value == "avg"
    assert list(node.attributes["output_size"].value) == [7, 3]
    assert model.graph.outputs[0].name == "y" and node.outputs[0] is model.graph.outputs[0]

    model = load_model(_model(*_region(shape, (7, 3), wrong=wrong), shape))
    n = len(list(model.graph))
    assert not fuse_adaptive_pools(model).modified
    assert len(list(model.graph)) == n and "nnport" not in model.opset_imports
