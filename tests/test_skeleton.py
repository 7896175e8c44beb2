"""nnport.skeleton: the protobuf wire reader behind lazy loading, on its own."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnport import skeleton


def _model(n: int) -> bytes:
    w = numpy_helper.from_array(np.arange(n, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_varint_round_trip():
    for n in (0, 1, 127, 128, 300, 2**35 + 7):
        enc = skeleton.encode_varint(n)
        assert skeleton.varint(enc, 0) == (n, len(enc))


def test_big_initializer_becomes_a_reference_into_the_file():
    data = _model(4096)  # 16 KiB of weights
    out = skeleton.skeleton_bytes(data, "model.onnx")
    assert out is not None and len(out) < 1024
    t = onnx.ModelProto.FromString(out).graph.initializer[0]
    assert t.data_location == TensorProto.EXTERNAL and not t.raw_data
    info = {e.key: e.value for e in t.external_data}
    off, length = int(info["offset"]), int(info["length"])
    assert info["location"] == "model.onnx"
    got = np.frombuffer(data[off:off + length], dtype=np.float32)
    np.testing.assert_array_equal(got, np.arange(4096, dtype=np.float32))


def test_small_initializers_leave_nothing_to_do():
    assert skeleton.skeleton_bytes(_model(16), "model.onnx") is None


def test_a_small_file_is_not_read_lean(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(_model(4096))  # under 1 MiB: the ordinary parser is as cheap
    assert skeleton.read_skeleton(p) is None
