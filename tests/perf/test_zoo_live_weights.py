"""benchmarks/ncnn_zoo.py converts each zoo model from a copy whose all-zero weight tensors are
random: timm zero-initialises the last norm of each residual block, so on the file as exported
a whole branch is dead and a wrong conversion of it still matches onnxruntime."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]


def _zoo_module():
    spec = importlib.util.spec_from_file_location("ncnn_zoo", ROOT / "benchmarks" / "ncnn_zoo.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ncnn_zoo", mod)
    spec.loader.exec_module(mod)
    return mod


class Block(torch.nn.Module):
    """x + conv2(relu(conv1(x))), conv2 zeroed as timm's zero_init_last leaves it once the
    exporter folds the norm into it."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 1)
        torch.nn.init.zeros_(self.conv2.weight)
        torch.nn.init.zeros_(self.conv2.bias)
        self.scale = torch.nn.Parameter(torch.zeros(()))  # a zero scalar is left as it is

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(x))) + self.scale


def test_live_weights_revives_the_dead_branch(tmp_path):
    src, dst = tmp_path / "dead.onnx", tmp_path / "live.onnx"
    x = torch.randn(1, 4, 6, 6)
    torch.onnx.export(Block().eval(), (x,), str(src), dynamo=False, opset_version=17,
                      input_names=["x"], do_constant_folding=False)
    n = _zoo_module().live_weights(src, dst)
    assert n == 2  # conv2's weight and bias; the scalar and conv1 untouched
    before = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(dst)).graph.initializer}
    assert before.keys() == after.keys()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert len(changed) == 2 and all(before[k].size >= 2 and not before[k].any() for k in changed)
    onnx.checker.check_model(str(dst))
    feed = {"x": x.numpy()}
    dead = ort.InferenceSession(str(src)).run(None, feed)[0]
    live = ort.InferenceSession(str(dst)).run(None, feed)[0]
    np.testing.assert_allclose(dead, x.numpy(), rtol=0, atol=0)  # the branch adds nothing
    assert np.abs(live - x.numpy()).max() > 1e-2  # now it does
