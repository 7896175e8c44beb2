"""Declared shapes of loop-carried values are hints, not facts: a Loop that grows a tensor from
empty (torchvision's Mask R-CNN pastes masks onto a carried tensor typed ``[0, 320, 320]``) must
keep every Concat input, and Shape of the carried value must not fold to the declared 0."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.util import assert_matches_ort, torch_run

F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def _grow_loop(body_out_shape, *, with_shape=False, outer_shape=(0, 2, 3)):
    """acc = empty[0, 2, 3]; for i in range(n): acc = Concat(acc, x * i) along 0."""
    nodes = [
        helper.make_node("Cast", ["i"], ["i_f"], to=F32),
        helper.make_node("Mul", ["x", "i_f"], ["row"]),
        helper.make_node("Unsqueeze", ["row", "ax0"], ["row3"]),
        helper.make_node("Concat", ["acc_in", "row3"], ["acc_out"], axis=0),
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
    ]
    outputs = [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
               helper.make_tensor_value_info("acc_out", F32, body_out_shape)]
    if with_shape:  # a second carried value: the carried tensor's length each iteration
        nodes.append(helper.make_node("Shape", ["acc_in"], ["n_in"], start=0, end=1))
        outputs.append(helper.make_tensor_value_info("n_in", I64, [1]))
    body = helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("i", I64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", F32, [0, 2, 3])],
        outputs,
        [numpy_helper.from_array(np.array([0], np.int64), "ax0")])
    loop_out = ["acc"] + (["lens"] if with_shape else [])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "acc0"], loop_out, body=body)],
        "grow",
        [helper.make_tensor_value_info("n", I64, []),
         helper.make_tensor_value_info("x", F32, [2, 3])],
        [helper.make_tensor_value_info("acc", F32, list(outer_shape))]
        + ([helper.make_tensor_value_info("lens", I64, [None, 1])] if with_shape else []),
        [numpy_helper.from_array(np.zeros((0, 2, 3), np.float32), "acc0")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    onnx.checker.check_model(model)
    return model


def _feeds(n=5):
    return {"n": np.array(n, np.int64), "x": np.arange(6, dtype=np.float32).reshape(2, 3) + 1}


def test_loop_grows_from_empty_declared_zero():
    got = assert_matches_ort(_grow_loop([0, 2, 3]), _feeds())
    assert got[0].shape == (5, 2, 3)


def test_loop_grows_from_empty_output_undeclared():
    got = assert_matches_ort(_grow_loop([None, 2, 3], outer_shape=(None, 2, 3)), _feeds(4))
    assert got[0].shape == (4, 2, 3)


def test_loop_shape_of_carried_value_is_not_folded():
    # the scan output collects Shape(acc_in)[0] of each iteration: 0, 1, 2.  onnxruntime's own
    # graph optimizer folds it to the declared 0 (a bug of its own), so the reference here is
    # onnxruntime with its optimizations off.
    import onnxruntime as ort

    model = _grow_loop([0, 2, 3], with_shape=True)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    ref = ort.InferenceSession(model.SerializeToString(), so,
                               providers=["CPUExecutionProvider"]).run(None, _feeds(3))
    got = torch_run(model, _feeds(3))
    assert ref[1].reshape(-1).tolist() == [0, 1, 2]
    assert got[1].reshape(-1).tolist() == [0, 1, 2]
    np.testing.assert_array_equal(got[0], ref[0])
