"""``nnport demo``: make a small CNN in ONNX, convert it to PyTorch and verify it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_small_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv-BN-ReLU x2, max-pool, global pool, Gemm; dynamic batch and image size, opset 17."""
    rng = np.random.default_rng(seed)

    def init(name, shape, scale=0.2):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("conv1.weight", (8, 3, 3, 3)), init("conv1.bias", (8,)),
        init("bn1.scale", (8,), 1.0), init("bn1.bias", (8,)), init("bn1.mean", (8,)),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn1.var"),
        init("conv2.weight", (16, 8, 3, 3)), init("conv2.bias", (16,)),
        init("fc.weight", (10, 16)), init("fc.bias", (10,)),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean",
                                                "bn1.var"], ["b1"], name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="nnport-demo")
    onnx.checker.check_model(model)
    return model


def run_demo(folder: str | os.PathLike) -> int:
    from .convert import convert

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "small_cnn.onnx"
    onnx.save(make_small_cnn(), onnx_path)
    print(f"made {onnx_path} (a small CNN with a dynamic batch and image size)")
    code = 0
    for shape in ((1, 3, 32, 32), (2, 3, 48, 40)):
        result = convert(onnx_path, folder / "small_cnn.py", input_shapes={"image": shape})
        print(f"converted to {result.outputs[0]} and {result.outputs[1]}; verified at "
              f"image={list(shape)}: {'MATCH' if result.ok else 'MISMATCH'}")
        for line in result.report.lines():
            print(line)
        code = code or (0 if result.ok else 1)
    return code
