"""The layout passes on small hand-built graphs (no TensorFlow needed): same numbers in
onnxruntime before and after, and the graph shape we want after."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.passes.tf_layout.conv1d import conv2d_to_conv1d
from nnport.passes.tf_layout.conv_fold import fold_conv_affine
from nnport.passes.tf_layout.pad_conv import fuse_pad_into_conv
from nnport.passes.tf_layout.transpose import optimize_transposes
from tests.util import ort_run

F32 = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info(n, F32, s) for n, s in inputs.items()],
                          [helper.make_tensor_value_info(n, F32, None) for n in outputs],
                          [numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f"
                                                   else v, n) for n, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _run_pass(proto, fn):
    model = ir.from_proto(proto)
    changed = fn(model).modified
    from onnx_ir.passes import common

    common.RemoveUnusedNodesPass()(model)
    out = ir.to_proto(model)
    return changed, out


def _same(a, b, feeds):
    for x, y in zip(ort_run(a, feeds), ort_run(b, feeds)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _ops(proto):
    return [n.op_type for n in proto.graph.node]


def test_transposes_pushed_through_elementwise_and_cancelled():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),      # NCHW -> NHWC
        helper.make_node("Relu", ["t"], ["r"]),
        helper.make_node("Add", ["r", "bias"], ["a"]),                       # bias along C (last)
        helper.make_node("Clip", ["a", "lo", "hi"], ["c"]),
        helper.make_node("Transpose", ["c"], ["back"], perm=[0, 3, 1, 2]),   # NHWC -> NCHW
        helper.make_node("Conv", ["back", "w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    proto = _model(nodes, {"x": [1, 3, 4, 5]}, ["y"], {
        "bias": RNG.standard_normal(3), "lo": np.array(0.0), "hi": np.array(0.5),
        "w": RNG.standard_normal((2, 3, 3, 3))})
    changed, out = _run_pass(proto, optimize_transposes)
    assert changed and "Transpose" not in _ops(out)
    _same(proto, out, {"x": RNG.standard_normal((1, 3, 4, 5)).astype(np.float32)})


def test_transpose_pair_that_does_not_cancel_is_merged():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
             helper.make_node("Transpose", ["t"], ["y"], perm=[0, 2, 1])]
    proto = _model(nodes, {"x": [2, 3, 4]}, ["y"], {})
    changed, out = _run_pass(proto, optimize_transposes)
    assert changed and _ops(out) == ["Transpose"] and out.graph.output[0].name == "y"
    _same(proto, out, {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)})


def test_transpose_not_pushed_through_a_non_elementwise_op():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Softmax", ["t"], ["y"], axis=-1)]
    proto = _model(nodes, {"x": [2, 3, 4]}, ["y"], {})
    changed, out = _run_pass(proto, optimize_transposes)
    assert not changed and _ops(out) == ["Transpose", "Softmax"]


def test_mul_add_after_conv_fold_into_weights():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=2),
             helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Add", ["shift", "m"], ["y"])]
    proto = _model(nodes, {"x": [1, 4, 6, 6]}, ["y"], {
        "w": RNG.standard_normal((6, 2, 3, 3)), "b": RNG.standard_normal(6),
        "s": RNG.standard_normal((1, 6, 1, 1)), "shift": RNG.standard_normal((6, 1, 1))})
    changed, out = _run_pass(proto, fold_conv_affine)
    assert changed and _ops(out) == ["Conv"] and out.graph.output[0].name == "y"
    _same(proto, out, {"x": RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)})


@pytest.mark.parametrize("shape", [(1, 1, 6, 1), (6, 6)])
def test_mul_that_is_not_per_channel_is_kept(shape):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    proto = _model(nodes, {"x": [1, 2, 6, 6]}, ["y"], {
        "w": RNG.standard_normal((3, 2, 3, 3)), "s": RNG.standard_normal(shape)})
    changed, out = _run_pass(proto, fold_conv_affine)
    assert not changed and _ops(out) == ["Conv", "Mul"]


def test_zero_pad_fuses_into_conv():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"]),
             helper.make_node("Conv", ["p", "w"], ["y"], pads=[1, 0, 1, 0])]
    proto = _model(nodes, {"x": [1, 2, 5, 5]}, ["y"], {
        "pads": np.array([0, 0, 1, 2, 0, 0, 0, 1], dtype=np.int64),
        "w": RNG.standard_normal((3, 2, 3, 3))})
    changed, out = _run_pass(proto, fuse_pad_into_conv)
    assert changed and _ops(out) == ["Conv"]
    pads = [list(a.ints) for a in out.graph.node[0].attribute if a.name == "pads"][0]
    assert pads == [2, 2, 1, 1]
    _same(proto, out, {"x": RNG.standard_normal((1, 2, 5, 5)).astype(np.float32)})


@pytest.mark.parametrize("pads,mode,value", [
    ([0, 1, 0, 0, 0, 0, 0, 0], "constant", None),   # pads the channels
    ([0, 0, 1, 1, 0, 0, 1, 1], "reflect", None),
    ([0, 0, 1, 1, 0, 0, 1, 1], "constant", 1.0),    # not a zero pad
])
def test_pads_that_are_not_conv_padding_stay(pads, mode, value):
    ins = ["x", "pads"] + (["v"] if value is not None else [])
    nodes = [helper.make_node("Pad", ins, ["p"], mode=mode),
             helper.make_node("Conv", ["p", "w"], ["y"])]
    cin = 3 if pads[1] else 2
    inits = {"pads": np.array(pads, dtype=np.int64), "w": RNG.standard_normal((3, cin, 3, 3))}
    if value is not None:
        inits["v"] = np.array(value)
    proto = _model(nodes, {"x": [1, 2, 5, 5]}, ["y"], inits)
    changed, out = _run_pass(proto, fuse_pad_into_conv)
    assert not changed and _ops(out) == ["Pad", "Conv"]


def test_conv2d_on_unit_height_becomes_conv1d():
    # TensorFlow's Conv1D: [N, W, C] -> ExpandDims -> [N, 1, W, C] -> NCHW -> Conv 1xk -> Squeeze
    nodes = [helper.make_node("Unsqueeze", ["x", "ax1"], ["u"]),
             helper.make_node("Transpose", ["u"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w", "b"], ["c"], kernel_shape=[1, 3],
                              pads=[0, 1, 0, 1], strides=[1, 2]),
             helper.make_node("Squeeze", ["c", "ax2"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "ax2"], ["u2"]),
             helper.make_node("MaxPool", ["u2"], ["mp"], kernel_shape=[1, 2], strides=[1, 2]),
             helper.make_node("Squeeze", ["mp", "ax2"], ["y"])]
    proto = _model(nodes, {"x": [2, 9, 4]}, ["y"], {
        "ax1": np.array([1], dtype=np.int64), "ax2": np.array([2], dtype=np.int64),
        "w": RNG.standard_normal((5, 4, 1, 3)), "b": RNG.standard_normal(5)})
    changed, out = _run_pass(proto, conv2d_to_conv1d)
    assert changed and _ops(out) == ["Transpose", "Conv", "Relu", "MaxPool"], _ops(out)
    w = [i for i in out.graph.initializer if i.name == out.graph.node[1].input[1]][0]
    assert list(w.dims) == [5, 4, 3]
    _same(proto, out, {"x": RNG.standard_normal((2, 9, 4)).astype(np.float32)})
