"""Example 2: a model that exists only as ONNX (built here with onnx.helper) -> PyTorch code ->
TorchScript.

    python examples/onnx_only_to_torchscript.py [OUT_DIR]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import nnport


def build_onnx() -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm ->
    Softmax, with a symbolic batch dimension."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    inits = {
        "conv_w": rng.standard_normal((8, 3, 3, 3)).astype(f32) * 0.3,
        "conv_b": rng.standard_normal(8).astype(f32) * 0.1,
        "bn_scale": rng.uniform(0.5, 1.5, 8).astype(f32),
        "bn_bias": rng.standard_normal(8).astype(f32) * 0.1,
        "bn_mean": rng.standard_normal(8).astype(f32) * 0.1,
        "bn_var": rng.uniform(0.5, 1.5, 8).astype(f32),
        "fc_w": rng.standard_normal((5, 8)).astype(f32) * 0.3,
        "fc_b": rng.standard_normal(5).astype(f32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1],
                         name="conv"),
        helper.make_node("BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                         ["bn"], epsilon=1e-5, name="bn"),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
        helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "onnx_only",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def main(out_dir: str | Path | None = None) -> dict:
    out = Path(out_dir or tempfile.mkdtemp(prefix="nnport-onnx-only-"))
    onnx_path = out / "model.onnx"
    onnx.save(build_onnx(), str(onnx_path))
    # readable PyTorch code + weights, verified against onnxruntime
    res_py = nnport.convert(str(onnx_path), out / "model.py")
    assert res_py.ok
    # TorchScript from the generated code (torch.jit.script, trace as a fallback), verified too
    res_pt = nnport.convert(str(onnx_path), out / "model.pt",
                            input_shapes={"input": (2, 3, 32, 32)})
    print("\n".join(res_pt.report.lines()))
    assert res_pt.ok, "TorchScript does not match onnxruntime"
    scripted = torch.jit.load(str(out / "model.pt"))
    with torch.no_grad():
        probs = scripted(torch.randn(4, 3, 32, 32))
    assert probs.shape == (4, 5) and torch.allclose(probs.sum(1), torch.ones(4))
    return {"py": out / "model.py", "torchscript": out / "model.pt", "notes": res_pt.notes,
            "report": res_pt.report}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
