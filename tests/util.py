"""Shared test helpers: build one-node or small graphs, run them in onnxruntime and through nnport."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

import nnport
from nnport.verify.compare import compare_arrays
from nnport.verify.torch_runner import to_numpy, to_torch_input


def ort_run(model: onnx.ModelProto, feeds: dict) -> list:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def torch_run(model: onnx.ModelProto, feeds: dict) -> list:
    module = nnport.to_torch(model)
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    with torch.no_grad():
        out = module(*[to_torch_input(feeds[n]) for n in names])
    if not isinstance(out, tuple):
        out = (out,)
    return [to_numpy(o) for o in out]


def assert_matches_ort(model: onnx.ModelProto, feeds: dict, rtol=None, atol=None):
    """nnport's torch output equals onnxruntime's for these inputs."""
    ref = ort_run(model, feeds)
    got = torch_run(model, feeds)
    assert len(ref) == len(got)
    for i, (r, g) in enumerate(zip(ref, got)):
        rep = compare_arrays(f"output {i}", r, g, rtol, atol)
        assert rep.ok, f"{rep}"
    return got


def one_node_model(op, inputs: dict, outputs: dict, attrs=None, inits=None, opset=17,
                   domain=""):
    """inputs/outputs: name -> (elem_type, shape); inits: name -> ndarray."""
    inits = inits or {}
    node = helper.make_node(op, [*inputs, *inits], list(outputs), domain=domain, **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in outputs.items()],
        [numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


F32 = TensorProto.FLOAT
I64 = TensorProto.INT64

# int8 weights that onnxruntime's int8 kernels multiply exactly on every x86 CPU: without VNNI
# (AVX2 only) they add pairs of u8·s8 products in saturating int16, so full-range weights came
# out 77 levels off on a QLinearConv there, while 255·64·2 < 32767 cannot saturate.  This is
# onnxruntime's reduce_range (7-bit weights); the generated code is exact at any range.
S8_EXACT = (-64, 64)


NNPORT = [sys.executable, "-m", "nnport.cli"]


def run_cli(*args, cwd=None):
    """Run the command line as a user does; returns (exit code, stdout, stderr)."""
    p = subprocess.run([*NNPORT, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def assert_clean_error(rc, out, err, *needles):
    """Exit code 2, no traceback, exactly one line on stderr containing every needle."""
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
