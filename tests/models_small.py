"""Tiny ONNX models built with onnx.helper for CLI and API tests (only element-wise ops)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def add_relu_model(batch="batch", names=("x", "y", "out"), opset=17) -> onnx.ModelProto:
    x, y, out = names
    w = numpy_helper.from_array(np.linspace(-1, 1, 4, dtype=np.float32), "w")
    nodes = [helper.make_node("Add", [x, y], ["s"], name="add"),
             helper.make_node("Mul", ["s", "w"], ["m"], name="mul"),
             helper.make_node("Relu", ["m"], [out], name="relu")]
    graph = helper.make_graph(
        nodes, "add_relu",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, 4]),
         helper.make_tensor_value_info(y, TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def unsupported_ops_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("FancyOp", ["a"], ["b"], name="fancy1", domain="com.example"),
             helper.make_node("FancyOp", ["b"], ["c"], name="fancy2", domain="com.example"),
             helper.make_node("OtherOp", ["c"], ["y"], name="other", domain="com.example")]
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.example", 1)])
