"""Example 4: tracing versus scripting a model with control flow, and what dynamic axes do.

Part 1: ``torch.jit.trace`` records the branch taken for the example input and bakes it in;
``torch.jit.script`` compiles the ``if`` and keeps both branches.

Part 2: the same CNN exported three times (static, batch-dynamic, height/width-dynamic), each
tried in onnxruntime at three input shapes; the expected pattern of successes and failures is
asserted.

    python examples/trace_vs_script.py [OUT_DIR]
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnport.torch_export import export


class Gate(nn.Module):
    """Data-dependent control flow: the branch depends on the input's values."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        if bool(x.sum() > 0):
            return self.lin(x)
        return -x


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


SHAPES = [(1, 3, 32, 32), (4, 3, 32, 32), (1, 3, 48, 64)]
DYNAMIC = {
    "static": None,
    "batch": {"x": {0: "batch"}},
    "hw": {"x": {2: "height", 3: "width"}},
}
# onnxruntime accepts the shape (True) or rejects it (False)
EXPECTED = {
    "static": [True, False, False],
    "batch": [True, True, False],
    "hw": [True, False, True],
}


def trace_vs_script() -> dict:
    torch.manual_seed(0)
    model = Gate().eval()
    pos, neg = torch.ones(2, 4), -torch.ones(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about the bool() it bakes in
        traced = torch.jit.trace(model, pos)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        ok = {
            "trace": [torch.equal(traced(x), model(x)) for x in (pos, neg)],
            "script": [torch.equal(scripted(x), model(x)) for x in (pos, neg)],
        }
    print(f"trace : right on the traced input {ok['trace'][0]}, on the other branch "
          f"{ok['trace'][1]}")
    print(f"script: right on both branches {all(ok['script'])}")
    assert ok["trace"] == [True, False] and ok["script"] == [True, True]
    return ok


def dynamic_axes(out: Path) -> dict:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = SmallCnn().eval()
    pattern = {}
    for kind, dyn in DYNAMIC.items():
        path = out / f"cnn_{kind}.onnx"
        res = export(model, path, input_shapes={"x": SHAPES[0]}, dynamic=dyn)
        assert res.ok, res.report.lines()
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        row = []
        for shape in SHAPES:
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            try:
                got = sess.run(None, {"x": x})[0]
            except Exception:  # onnxruntime rejects the input's shape
                row.append(False)
                continue
            with torch.no_grad():
                ref = model(torch.from_numpy(x)).numpy()
            row.append(bool(np.allclose(got, ref, rtol=1e-4, atol=1e-5)))
        pattern[kind] = row
        print(f"{kind:7s} " + "  ".join(f"{str(s):16s}{'ok' if r else 'FAIL'}"
                                      for s, r in zip(SHAPES, row)))
    assert pattern == EXPECTED, pattern
    return pattern


def main(out_dir: str | Path | None = None) -> dict:
    out = Path(out_dir or tempfile.mkdtemp(prefix="nnport-trace-script-"))
    return {"trace_vs_script": trace_vs_script(), "dynamic_axes": dynamic_axes(out)}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
