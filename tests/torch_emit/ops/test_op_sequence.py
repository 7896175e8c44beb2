"""Sequence and optional ops against onnxruntime (sequences become Python lists)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import assert_matches_ort

F32, I64 = TensorProto.FLOAT, TensorProto.INT64
vi = helper.make_tensor_value_info


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _c(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


@pytest.mark.parametrize("pos,erase", [(0, 0), (-1, -2), (3, 1), (-3, -1)])
def test_sequence_ops_dynamic_positions(pos, erase):
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
        helper.make_node("SequenceInsert", ["s", "d", "pos"], ["s2"]),
        helper.make_node("SequenceErase", ["s2", "erase"], ["s3"]),
        helper.make_node("SequenceErase", ["s3"], ["s4"]),  # drops the last one
        helper.make_node("SequenceInsert", ["s4", "a"], ["s5"]),  # appends
        helper.make_node("ConcatFromSequence", ["s5"], ["cat"], axis=0),
        helper.make_node("ConcatFromSequence", ["s5"], ["stk"], axis=-1, new_axis=1),
        helper.make_node("SequenceLength", ["s5"], ["n"]),
        helper.make_node("SequenceAt", ["s5", "erase"], ["at"]),
    ]
    model = _model(nodes, [vi(k, F32, [2, 3]) for k in "abcd"] +
                   [vi("pos", I64, []), vi("erase", I64, [])],
                   [vi("cat", F32, None), vi("stk", F32, None), vi("n", I64, []),
                    vi("at", F32, None)])
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal((2, 3)).astype(np.float32) for k in "abcd"}
    feeds.update(pos=np.array(pos, np.int64), erase=np.array(erase, np.int64))
    assert_matches_ort(model, feeds)


def test_constant_positions_and_empty_sequence():
    nodes = [
        helper.make_node("SequenceEmpty", [], ["e"], dtype=F32),
        helper.make_node("SequenceInsert", ["e", "a"], ["s1"]),
        helper.make_node("SequenceInsert", ["s1", "b", "zero"], ["s2"]),
        helper.make_node("SequenceInsert", ["s2", "a", "minus1"], ["s3"]),
        helper.make_node("SequenceErase", ["s3", "zero"], ["s4"]),
        helper.make_node("ConcatFromSequence", ["s4"], ["cat"], axis=1),
    ]
    model = _model(nodes, [vi("a", F32, [2, 3]), vi("b", F32, [2, 3])], [vi("cat", F32, None)],
                   [_c("zero", np.int64(0)), _c("minus1", np.int64(-1))])
    src = generate_torch(model)[0]
    assert "[:-1]" in src and "torch.cat(" in src
    rng = np.random.default_rng(1)
    assert_matches_ort(model, {"a": rng.standard_normal((2, 3)).astype(np.float32),
                               "b": rng.standard_normal((2, 3)).astype(np.float32)})


@pytest.mark.parametrize("split,keepdims,const", [
    (None, 1, False), (None, 0, False), ([1, 4], 1, True), ([2, 3], 1, False), (2, 1, True),
])
def test_split_to_sequence(split, keepdims, const):
    inputs, inits, node_in = [vi("x", F32, [3, 5])], [], ["x"]
    feeds = {"x": np.arange(15, dtype=np.float32).reshape(3, 5)}
    if split is not None:
        node_in.append("split")
        arr = np.array(split, np.int64)
        if const:
            inits.append(_c("split", arr))
        else:
            inputs.append(vi("split", I64, list(arr.shape)))
            feeds["split"] = arr
    nodes = [helper.make_node("SplitToSequence", node_in, ["s"], axis=1, keepdims=keepdims),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("SequenceAt", ["s", "last"], ["tail"])]
    inits.append(_c("last", np.int64(-1)))
    model = _model(nodes, inputs, [vi("n", I64, []), vi("tail", F32, None)], inits)
    assert_matches_ort(model, feeds)


def test_sequence_map_with_tensor_and_sequence_inputs():
    body = helper.make_graph(
        [helper.make_node("Add", ["u", "v"], ["uv"]),
         helper.make_node("Mul", ["uv", "w"], ["o1"]),
         helper.make_node("Shape", ["u"], ["o2"])],
        "body", [vi("u", F32, ["n"]), vi("v", F32, ["n"]), vi("w", F32, [1])],
        [vi("o1", F32, ["n"]), vi("o2", I64, [1])])
    nodes = [
        helper.make_node("SplitToSequence", ["x", "sizes"], ["sx"]),
        helper.make_node("SplitToSequence", ["y", "sizes"], ["sy"]),
        helper.make_node("SequenceMap", ["sx", "sy", "w"], ["m1", "m2"], body=body),
        helper.make_node("ConcatFromSequence", ["m1"], ["c1"], axis=0),
        helper.make_node("ConcatFromSequence", ["m2"], ["c2"], axis=0),
    ]
    model = _model(nodes, [vi("x", F32, [6]), vi("y", F32, [6]), vi("w", F32, [1])],
                   [vi("c1", F32, None), vi("c2", I64, None)],
                   [_c("sizes", np.array([1, 2, 3], np.int64))])
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal(6).astype(np.float32),
             "y": rng.standard_normal(6).astype(np.float32),
             "w": np.array([3.0], np.float32)}
    assert "for i in range(len(" in generate_torch(model)[0]
    assert_matches_ort(model, feeds)


@pytest.mark.parametrize("flag", [True, False])
def test_optional_through_if(flag):
    # If yields an empty or full optional; the caller checks it and falls back to x
    tp = helper.make_tensor_type_proto(F32, [3])
    opt_tp = helper.make_optional_type_proto(tp)
    then_g = helper.make_graph([helper.make_node("Optional", ["x"], ["full"])], "then", [],
                               [helper.make_value_info("full", opt_tp)])
    else_g = helper.make_graph([helper.make_node("Optional", [], ["empty"], type=tp)], "else",
                               [], [helper.make_value_info("empty", opt_tp)])
    has_then = helper.make_graph(
        [helper.make_node("OptionalGetElement", ["opt"], ["got"]),
         helper.make_node("Mul", ["got", "got"], ["sq"])], "has", [], [vi("sq", F32, [3])])
    has_else = helper.make_graph([helper.make_node("Neg", ["x"], ["nx"])], "none", [],
                                 [vi("nx", F32, [3])])
    nodes = [
        helper.make_node("If", ["flag"], ["opt"], then_branch=then_g, else_branch=else_g),
        helper.make_node("OptionalHasElement", ["opt"], ["has"]),
        helper.make_node("OptionalHasElement", ["x"], ["x_has"]),
        helper.make_node("If", ["has"], ["y"], then_branch=has_then, else_branch=has_else),
    ]
    model = _model(nodes, [vi("x", F32, [3]), vi("flag", TensorProto.BOOL, [])],
                   [vi("y", F32, [3]), vi("has", TensorProto.BOOL, []),
                    vi("x_has", TensorProto.BOOL, [])], opset=18)
    src = generate_torch(model)[0]
    assert "is not None" in src and "None" in src
    assert_matches_ort(model, {"x": np.array([1.0, -2.0, 3.0], np.float32),
                               "flag": np.array(flag)})
