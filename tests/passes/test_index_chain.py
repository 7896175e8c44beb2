"""F.pad as the TorchScript exporter writes it: the pads reshaped to (-1, 2), flipped,
transposed and flattened. With pads computed from the input size (Swin's window padding), the
generated code must stay plain Python ints, so that torch.export traces it."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import nnport
from nnport.convert import generate_torch
from util import assert_matches_ort


class _WindowPad(torch.nn.Module):
    def forward(self, x):
        _, h, w, _ = x.shape
        x = F.pad(x, (0, 0, 0, (7 - w % 7) % 7, 0, (7 - h % 7) % 7))
        return torch.relu(x)


def _export() -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_WindowPad(), (torch.randn(1, 10, 14, 4),), buf, dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {1: "H", 2: "W"}})
    return onnx.load_from_string(buf.getvalue())


def test_exported_pads_stay_python_ints_and_torch_export_traces_them():
    model = _export()
    ops = [n.op_type for n in model.graph.node]
    assert {"Reshape", "Slice", "Transpose", "Pad"} <= set(ops), ops  # the exporter's idiom
    source, _ = generate_torch(model)
    assert "F.pad(x, [0, 0, 0, " in source, source
    assert "torch.tensor(" not in source and "_onnx_pad" not in source, source
    module = nnport.to_torch(model)
    x = torch.randn(1, 10, 20, 4)
    exported = torch.export.export(module, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), module(x))
    for h, w in ((10, 14), (7, 7), (3, 20)):
        feeds = {"x": np.random.default_rng(h).standard_normal((1, h, w, 4)).astype(np.float32)}
        assert_matches_ort(model, feeds)


@pytest.mark.parametrize("chain,expect", [
    # (-1, 2) -> flip rows -> transpose -> flat: ONNX order from torch's pairs
    ([("Reshape", [-1, 2]), ("Slice", [-1], [-(2**62)], [0], [-1]), ("Transpose", [1, 0]),
      ("Reshape", [-1])], [4, 2, 0, 5, 3, 1]),
    ([("Reshape", [2, 3]), ("Transpose", [1, 0]), ("Reshape", [-1])], [0, 3, 1, 4, 2, 5]),
    ([("Reshape", [3, 2]), ("Slice", [1], [3], [0], [1]), ("Reshape", [4])], [2, 3, 4, 5]),
])
def test_reordering_chains_become_one_gather(chain, expect):
    """x's six dims moved through a chain; zeros of the resulting shape come out."""
    from onnx import TensorProto, helper, numpy_helper

    f = helper.make_node
    nodes, inits, cur = [f("Shape", ["x"], ["s"])], [], "s"
    for i, (op, *params) in enumerate(chain):
        out = f"c{i}"
        if op == "Transpose":
            nodes.append(f(op, [cur], [out], perm=params[0]))
        else:
            names = []
            for j, p in enumerate(params):
                names.append(f"p{i}_{j}")
                inits.append(numpy_helper.from_array(np.array(p, np.int64), names[-1]))
            nodes.append(f(op, [cur] + names, [out]))
        cur = out
    nodes.append(f("ConstantOfShape", [cur], ["y"]))
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["a", "b", "c", "d", "e", "f"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    source, _ = generate_torch(model)
    assert "torch.tensor(" not in source and ".flip(" not in source, source
    dims = [2, 3, 1, 4, 1, 2]
    x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
    module = nnport.to_torch(model)
    with torch.no_grad():
        y = module(torch.from_numpy(x))
    assert list(y.shape) == [dims[i] for i in expect]
    assert_matches_ort(model, {"x": x})
