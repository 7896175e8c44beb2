"""A small CNN with the clutter exporters leave behind: Identity, Dropout, same-type Cast,
BatchNormalization after Conv, a Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def cnn_model(batch="N", opset=17, seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.3  # noqa: E731
    inits = {
        "w1": f(8, 3, 3, 3), "b1": f(8),
        "bn_s": (1 + 0.1 * rng.standard_normal(8)).astype(np.float32), "bn_b": f(8),
        "bn_m": f(8), "bn_v": (0.5 + rng.random(8)).astype(np.float32),
        "w2": f(4, 8, 3, 3),
        "fc_w": f(5, 4 * 8 * 8), "fc_b": f(5),
        "idx0": np.array(0, np.int64), "minus1": np.array([-1], np.int64),
        "zero_pads": np.zeros(8, np.int64),
        "shape_same": np.array([1, 1, 1, 1], np.int64),
    }
    N = [
        helper.make_node("Identity", ["x"], ["x_id"], name="ident"),
        helper.make_node("Conv", ["x_id", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn1"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Dropout", ["r1"], ["d1"], name="drop1"),
        helper.make_node("Cast", ["d1"], ["cast1"], name="cast1", to=TensorProto.FLOAT),
        helper.make_node("Pad", ["cast1", "zero_pads"], ["pad1"], name="pad1"),
        helper.make_node("Expand", ["pad1", "shape_same"], ["exp1"], name="expand1"),
        helper.make_node("MaxPool", ["exp1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c2"], ["t2"], name="transpose_id", perm=[0, 1, 2, 3]),
        helper.make_node("Relu", ["t2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Shape", ["p2"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "idx0"], ["n"], name="gather_n", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq_n"),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["p2", "newshape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=-1),
    ]
    inits["axes0"] = np.array([0], np.int64)
    graph = helper.make_graph(
        N, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [batch, 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    return m
