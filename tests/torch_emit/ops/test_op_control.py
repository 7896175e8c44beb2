"""If / Loop / Scan against onnxruntime, and the Python control flow they become."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import assert_matches_ort

F32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
vi = helper.make_tensor_value_info


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def if_loop_model(opset=17):
    """y = If(flag, x * 2, -x); then a Loop with trip count n and an early-exit condition,
    two carried values that swap each step and a scan output."""
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t_out"])], "then", [],
                               [vi("t_out", F32, [3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e_out"])], "else", [],
                               [vi("e_out", F32, [3])])
    body = helper.make_graph(
        [
            helper.make_node("Cast", ["i"], ["i_f"], to=F32),
            helper.make_node("Add", ["a", "i_f"], ["a_plus"]),
            helper.make_node("Add", ["a", "b"], ["s"]),
            helper.make_node("Less", ["i", "three"], ["c_out"]),
            helper.make_node("Mul", ["s", "x"], ["scan"]),  # uses an outer-scope value
        ],
        "body",
        [vi("i", I64, []), vi("c", BOOL, []), vi("a", F32, [3]), vi("b", F32, [3])],
        [vi("c_out", BOOL, []), vi("b_out", F32, [3]), vi("a_plus", F32, [3]),
         vi("scan", F32, [3])],
    )
    # b_out is the body input b: carried (a, b) -> (b, a + i)
    body.node.insert(0, helper.make_node("Identity", ["b"], ["b_out"]))
    nodes = [
        helper.make_node("If", ["flag"], ["y"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["n", "true", "y", "x"], ["a_final", "b_final", "scans"],
                         body=body),
    ]
    inits = [numpy_helper.from_array(np.array([2.0, 2.0, 2.0], np.float32), "two"),
             numpy_helper.from_array(np.array(True), "true"),
             numpy_helper.from_array(np.array(3, np.int64), "three")]
    return _model(nodes, [vi("x", F32, [3]), vi("n", I64, []), vi("flag", BOOL, [])],
                  [vi("a_final", F32, [3]), vi("b_final", F32, [3]), vi("scans", F32, None)],
                  inits, opset)


@pytest.mark.parametrize("opset", [11, 13, 17, 21])
@pytest.mark.parametrize("flag,n", [(True, 2), (False, 2), (True, 7), (False, 1)])
def test_if_loop(opset, flag, n):
    model = if_loop_model(opset)
    feeds = {"x": np.array([1.0, -2.0, 0.5], np.float32), "n": np.array(n, np.int64),
             "flag": np.array(flag)}
    assert_matches_ort(model, feeds)


def test_if_loop_source_is_python_control_flow():
    src = generate_torch(if_loop_model())[0]
    assert "if bool(flag):" in src and "else:" in src
    assert "for i in range(int(n)):" in src
    assert "torch.stack(" in src


def test_while_loop_without_trip_count():
    body = helper.make_graph(
        [helper.make_node("Add", ["a", "one"], ["a_out"]),
         helper.make_node("Less", ["a_out", "limit"], ["c_out"])],
        "body", [vi("i", I64, []), vi("c", BOOL, []), vi("a", F32, [])],
        [vi("c_out", BOOL, []), vi("a_out", F32, [])])
    nodes = [helper.make_node("Loop", ["", "c0", "a0"], ["a_final"], body=body)]
    inits = [numpy_helper.from_array(np.array(1.5, np.float32), "one"),
             numpy_helper.from_array(np.array(10.0, np.float32), "limit")]
    model = _model(nodes, [vi("c0", BOOL, []), vi("a0", F32, [])], [vi("a_final", F32, [])],
                   inits)
    assert "while bool(" in generate_torch(model)[0]
    for c0, a0 in [(True, 0.0), (False, 0.0), (True, 20.0)]:
        assert_matches_ort(model, {"c0": np.array(c0), "a0": np.array(a0, np.float32)})


@pytest.mark.parametrize("opset", [9, 11, 16, 21])
def test_scan_axes_and_directions(opset):
    # running sum over axis 1 of x (read backwards) and forward over axis 0 of y;
    # outputs stacked on axis 1 (reversed) and axis 0
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xt"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "yt"], ["o1"]),
         helper.make_node("Identity", ["s_out"], ["o2"])],
        "body", [vi("s", F32, [2]), vi("xt", F32, [2]), vi("yt", F32, [2])],
        [vi("s_out", F32, [2]), vi("o1", F32, [2]), vi("o2", F32, [2])])
    node = helper.make_node("Scan", ["s0", "x", "y"], ["s_final", "out1", "out2"], body=body,
                            num_scan_inputs=2, scan_input_axes=[1, 0],
                            scan_input_directions=[1, 0], scan_output_axes=[-1, 0],
                            scan_output_directions=[1, 0])
    model = _model([node], [vi("s0", F32, [2]), vi("x", F32, [2, 4]), vi("y", F32, [4, 2])],
                   [vi("s_final", F32, [2]), vi("out1", F32, None), vi("out2", F32, None)],
                   opset=opset)
    rng = np.random.default_rng(0)
    feeds = {"s0": rng.standard_normal(2).astype(np.float32),
             "x": rng.standard_normal((2, 4)).astype(np.float32),
             "y": rng.standard_normal((4, 2)).astype(np.float32)}
    assert_matches_ort(model, feeds)


def test_scan8_batch_and_sequence_lens():
    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xt"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["o"])],
        "body", [vi("s", F32, [2]), vi("xt", F32, [2])],
        [vi("s_out", F32, [2]), vi("o", F32, [2])])
    node = helper.make_node("Scan", ["lens", "s0", "x"], ["s_final", "out"], body=body,
                            num_scan_inputs=1, directions=[1])
    model = _model([node], [vi("lens", I64, [2]), vi("s0", F32, [2, 2]),
                            vi("x", F32, [2, 3, 2])],
                   [vi("s_final", F32, [2, 2]), vi("out", F32, [2, 3, 2])], opset=8)
    rng = np.random.default_rng(1)
    feeds = {"lens": np.array([3, 2], np.int64),
             "s0": rng.standard_normal((2, 2)).astype(np.float32),
             "x": rng.standard_normal((2, 3, 2)).astype(np.float32)}
    assert_matches_ort(model, feeds)


def test_zero_iteration_loop_with_untyped_scan_output(tmp_path, capsys):
    """Range's function body as a Loop whose scan output carries no type: zero iterations give
    what onnxruntime gives (shape (0,)), not a torch.stack error; and the CLI prints nothing of
    the untyped value's serialization (onnx_ir logs it)."""
    import onnx

    from conformance.cases import all_cases
    from nnport.cli import main

    model = all_cases()["test_range_float_type_positive_delta_expanded"].model
    empty = {"start": np.array(5, np.float32), "limit": np.array(1, np.float32),
             "delta": np.array(1, np.float32)}
    assert_matches_ort(model, empty)
    path = tmp_path / "range.onnx"
    onnx.save(model, path)
    rc = main(["convert", str(path), str(tmp_path / "out" / "model.py")])
    err = capsys.readouterr().err
    assert rc == 0 and "value type" not in err, err
