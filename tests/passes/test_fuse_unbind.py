"""Split into size-1 pieces, each squeezed on the split axis, prints as one ``x.unbind(axis)``;
near misses stay as they are; both give onnxruntime's numbers."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import nnport
from nnport.convert import generate_torch


def _model(opset=17, split_axis=0, squeeze_axes=(0, 0, 0), sizes=(1, 1, 1), extra_use=False,
           shape=(3, 2, 4)):
    f = helper.make_node
    inits, nodes = [], []
    n = 3 if sizes is None else len(sizes)
    outs = [f"p{i}" for i in range(n)]
    if sizes is None:
        nodes.append(f("Split", ["x"], outs, axis=split_axis, num_outputs=3))
    elif opset >= 13:
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        nodes.append(f("Split", ["x", "sizes"], outs, axis=split_axis))
    else:
        nodes.append(f("Split", ["x"], outs, axis=split_axis, split=list(sizes)))
    ys = []
    for i, ax in enumerate(squeeze_axes[:n]):
        if opset >= 13:
            inits.append(numpy_helper.from_array(np.array([ax], np.int64), f"ax{i}"))
            nodes.append(f("Squeeze", [outs[i], f"ax{i}"], [f"s{i}"]))
        else:
            nodes.append(f("Squeeze", [outs[i]], [f"s{i}"], axes=[ax]))
        nodes.append(f("Relu", [f"s{i}"], [f"y{i}"]))
        ys.append(f"y{i}")
    if extra_use:
        nodes.append(f("Neg", ["p1"], ["extra"]))
        ys.append("extra")
    g = helper.make_graph(nodes, "unbind",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, None) for y in ys],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _same_as_ort(model, shape):
    shape = tuple(3 if d == "n" else d for d in shape)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    with torch.no_grad():
        got = nnport.to_torch(model)(torch.from_numpy(x))
    got = got if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(),                                                   # Split sizes as an input
    dict(opset=11),                                           # sizes and axes as attributes
    dict(opset=18, sizes=None),                               # num_outputs, dim known to be 3
    dict(split_axis=1, squeeze_axes=(1, 1), sizes=(1, 1), shape=(4, 2, 3)),
    dict(split_axis=-1, squeeze_axes=(-1, 2, 2, 2), sizes=(1, 1, 1, 1), shape=(2, 3, 4)),
])
def test_split_and_squeeze_print_as_unbind(kw):
    model = _model(**kw)
    source, _ = generate_torch(model)
    assert ".unbind(" in source and "torch.split(" not in source and ".squeeze(" not in source
    _same_as_ort(model, kw.get("shape", (3, 2, 4)))


@pytest.mark.parametrize("kw", [
    dict(opset=18, sizes=None, shape=("n", 2, 4)),             # piece sizes not known
    dict(squeeze_axes=(0, 1, 0), shape=(3, 1, 4)),             # squeezes another axis
    dict(extra_use=True),                                       # a piece used elsewhere too
])
def test_near_misses_stay_split(kw):
    model = _model(**kw)
    source, _ = generate_torch(model)
    assert ".unbind(" not in source and "torch.split(" in source
    _same_as_ort(model, kw.get("shape", (3, 2, 4)))
