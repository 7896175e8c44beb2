"""Shape arithmetic prints as Python ints and stays dynamic (torch_emit/symbolic.py)."""
import numpy as np
import onnx
from onnx import TensorProto, helper

from nnport.convert import generate_torch
from util import assert_matches_ort


def _model(nodes, inits, out_shape=None):
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C", "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_flatten_spatial_by_multiplying_dims():
    """y = x.reshape(N, C, H*W): Shape, Gather x4, Mul, Unsqueeze x3, Concat, Reshape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"])]
    for i, n in enumerate("nchw"):
        nodes.append(helper.make_node("Gather", ["s", f"i{i}"], [n], axis=0))
    nodes += [helper.make_node("Mul", ["h", "w"], ["hw"]),
              helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
              helper.make_node("Unsqueeze", ["c", "ax"], ["c1"]),
              helper.make_node("Unsqueeze", ["hw", "ax"], ["hw1"]),
              helper.make_node("Concat", ["n1", "c1", "hw1"], ["shape"], axis=0),
              helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = {f"i{i}": np.array(i, np.int64) for i in range(4)}
    inits["ax"] = np.array([0], np.int64)
    m = _model(nodes, inits)
    src = generate_torch(m)[0]
    assert "y = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])" in src, src
    for shape in [(1, 2, 3, 4), (2, 3, 5, 1)]:
        out = assert_matches_ort(m, {"x": np.random.rand(*shape).astype(np.float32)})
        assert out[0].shape == (shape[0], shape[1], shape[2] * shape[3])


def test_tracked_value_used_as_tensor_is_materialized():
    """A shape value that reaches a non-shape op becomes a tensor there, with the same values."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["sf"], ["y"], keepdims=0)]
    m = _model(nodes, {}, [])
    src = generate_torch(m)[0]
    assert "torch.tensor([x.shape[0], x.shape[1], x.shape[2], x.shape[3]]" in src
    out = assert_matches_ort(m, {"x": np.zeros((2, 3, 4, 5), np.float32)})
    assert float(out[0]) == 14.0


def test_expand_with_bidirectional_broadcast_stays_correct():
    """ONNX Expand broadcasts both ways; a tracked target with a 1 where x is larger."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "st", "en"], ["s01"]),
             helper.make_node("Concat", ["s01", "ones"], ["t"], axis=0),
             helper.make_node("Expand", ["x", "t"], ["y"])]
    m = _model(nodes, {"st": np.array([0], np.int64), "en": np.array([2], np.int64),
                       "ones": np.array([1, 1], np.int64)})
    src = generate_torch(m)[0]
    assert "torch.tensor(" not in src
    assert_matches_ort(m, {"x": np.random.rand(2, 3, 4, 5).astype(np.float32)})


def test_window_padding_with_mod_is_python_arithmetic():
    """Swin pads H to a multiple of the window: pad = (7 - H % 7) % 7 prints as Python `%`."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i3"], ["w"], axis=0),
             helper.make_node("Mod", ["w", "seven"], ["r"]),
             helper.make_node("Sub", ["seven", "r"], ["d"]),
             helper.make_node("Mod", ["d", "seven"], ["p"]),
             helper.make_node("Unsqueeze", ["p", "ax"], ["p1"]),
             helper.make_node("Concat", ["zeros", "p1"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads"], ["y"])]
    m = _model(nodes, {"i3": np.array(3, np.int64), "seven": np.array(7, np.int64),
                       "ax": np.array([0], np.int64),
                       "zeros": np.zeros(7, np.int64)})
    src = generate_torch(m)[0]
    assert "% 7" in src and "torch.remainder" not in src, src
    for w in (5, 7, 9):
        out = assert_matches_ort(m, {"x": np.random.rand(1, 2, 3, w).astype(np.float32)})
        assert out[0].shape[3] == w + (7 - w % 7) % 7
