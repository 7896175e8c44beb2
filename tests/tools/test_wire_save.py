"""Saving a model whose weights point into a file writes them from that file, tensor by
tensor (nnport.wire_save): the result is the same model, byte for byte in every tensor."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.io import load_model, save_model


def _model(external: bool, path):
    rng = np.random.default_rng(0)
    big = numpy_helper.from_array(  # 1.2 MB: the file is read lean
        rng.standard_normal((300, 1024)).astype(np.float32), "big")
    big.doc_string = "a weight with a doc string"
    half = numpy_helper.from_array(rng.standard_normal((1024, 32)).astype(np.float16), "half")
    ids = numpy_helper.from_array(np.arange(600, dtype=np.int64), "ids")
    small = numpy_helper.from_array(np.ones(4, np.float32), "small")
    # a subgraph constant and an empty tensor: kept inline
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
            np.full((2, 2), 3, np.float32)))], "then", [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 2])])
    nodes = [helper.make_node("MatMul", ["x", "big"], ["m"]),
             helper.make_node("Cast", ["m"], ["m16"], to=TensorProto.FLOAT16),
             helper.make_node("MatMul", ["m16", "half"], ["y"]),
             helper.make_node("Gather", ["ids", "idx"], ["g"]),
             helper.make_node("If", ["cond"], ["c_out"], then_branch=then, else_branch=then)]
    empty = numpy_helper.from_array(np.zeros((0, 3), np.float32), "empty")
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 300]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 32]),
         helper.make_tensor_value_info("g", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("c_out", TensorProto.FLOAT, [2, 2])],
        [big, half, ids, small, empty])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.metadata_props.add(key="k", value="v")
    if external:
        onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="w.bin", size_threshold=1024)
    else:
        onnx.save(m, str(path))
    return m


@pytest.mark.parametrize("external", [False, True])
def test_lean_model_saves_identically(tmp_path, external):
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "m.onnx"
    want = _model(external, src)
    out = tmp_path / "out.onnx"
    model = load_model(src, lazy=True)
    file_backed = [v.name for v in model.graph.initializers.values()
                   if hasattr(v.const_value, "location")]
    assert {"big", "half", "ids"} <= set(file_backed)  # the path under test is taken
    save_model(model, out)
    got = onnx.load(str(out))  # self-contained: no w.bin beside it
    onnx.checker.check_model(got)
    assert {p.key: p.value for p in got.metadata_props} == {"k": "v"}
    tensors = {t.name: t for t in got.graph.initializer}
    for t in want.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            onnx.external_data_helper.load_external_data_for_tensor(t, str(src.parent))
        assert tensors[t.name].data_location == TensorProto.DEFAULT
        np.testing.assert_array_equal(numpy_helper.to_array(tensors[t.name]),
                                      numpy_helper.to_array(t), err_msg=t.name)
        assert tensors[t.name].doc_string == t.doc_string
    assert [n.op_type for n in got.graph.node] == [n.op_type for n in want.graph.node]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.ones((2, 300), np.float32)
    y, g, c = sess.run(None, {"x": x, "idx": np.array([0, 5, 599]), "cond": np.array(True)})
    big = numpy_helper.to_array(tensors["big"])
    half = numpy_helper.to_array(tensors["half"])
    np.testing.assert_allclose(y, (x @ big).astype(np.float16) @ half, rtol=2e-2, atol=0.5)
    assert g.tolist() == [0, 5, 599] and (c == 3).all()


def test_saving_leaves_the_model_as_it_was(tmp_path):
    src = tmp_path / "m.onnx"
    _model(False, src)
    model = load_model(src, lazy=True)
    names = list(model.graph.initializers)
    save_model(model, tmp_path / "a.onnx")
    assert list(model.graph.initializers) == names  # file-backed ones not moved to the end
    save_model(model, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
