"""int8 models: two correct implementations differ by one quantization step where a value sits
at a rounding boundary.  verify accepts that by default and says so; --locate looks past it."""
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import nnport
from nnport.verify.compare import compare_arrays
from nnport.verify.locate import locate
from nnport.verify.quant import QuantStep, quant_steps


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.c2(torch.relu(self.c1(x)))).flatten(1))


class _Reader:  # calibration data for quantize_static
    def __init__(self):
        rng = np.random.default_rng(0)
        self.data = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
                          for _ in range(8)])

    def get_next(self):
        return next(self.data, None)


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    d = tmp_path_factory.mktemp("qstep")
    torch.manual_seed(0)
    torch.onnx.export(_Net().eval(), (torch.randn(1, 3, 8, 8),), str(d / "fp32.onnx"),
                      dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    quantize_static(str(d / "fp32.onnx"), str(d / "qdq.onnx"), _Reader(),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    return d / "qdq.onnx"


def _output_scale(path) -> float:
    m = onnx.load(str(path))
    dq = next(n for n in m.graph.node if n.output[0] == "y")
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return float(init[dq.input[1]])


def test_compare_within_one_step():
    q = QuantStep(0.05, "DequantizeLinear 'dq'", 1)
    ref = np.linspace(-1, 1, 20).astype(np.float32)
    flipped = ref.copy()
    flipped[3] += 0.05
    rep = compare_arrays("y", ref, flipped, step=q)
    assert rep.ok and rep.rule == "quant-step" and rep.quant_step == pytest.approx(0.05)
    assert "one quantization step" in rep.note
    assert not compare_arrays("y", ref, flipped).ok  # the plain fp32 rule rejects it
    flipped[4] += 0.1  # two steps: a real difference
    assert not compare_arrays("y", ref, flipped, step=q).ok
    # quantized integers: one level
    qi = np.arange(-5, 5, dtype=np.int8)
    assert compare_arrays("q", qi, qi + np.int8(1), step=q).ok
    assert not compare_arrays("q", qi, qi + np.int8(2), step=q).ok
    # tolerances the caller gives are taken as they are
    rep = compare_arrays("y", ref, ref + 0.05, atol=1e-6, step=q)
    assert not rep.ok and rep.rule == "explicit"


def test_quant_steps_rules(qdq):
    steps = quant_steps(qdq)
    y_scale = _output_scale(qdq)
    assert steps["y"].rule == 1 and steps["y"].step == pytest.approx(y_scale)
    assert "DequantizeLinear" in steps["y"].source
    gemm_out = next(n.output[0] for n in onnx.load(str(qdq)).graph.node if n.op_type == "Gemm")
    assert steps[gemm_out].rule == 2 and steps[gemm_out].step == pytest.approx(y_scale)
    assert "x" not in steps  # the float graph input is not quantized


class _Flipped(torch.nn.Module):
    """The converted model with one output moved by one quantization step: a boundary flip."""

    def __init__(self, inner, step):
        super().__init__()
        self.inner, self.step = inner, step

    def forward(self, x):
        y = self.inner(x).clone()
        y[0, 3] += self.step
        return y


def test_verify_accepts_one_step_and_says_so(qdq, tmp_path):
    step = _output_scale(qdq)
    b = _Flipped(nnport.to_torch(qdq), step)
    rep = nnport.verify(qdq, b)
    assert rep.ok, rep.lines()
    o = rep.outputs[0]
    assert o.rule == "quant-step" and o.quant_step == pytest.approx(step)
    assert o.max_abs_err == pytest.approx(step, rel=1e-3)
    assert "one quantization step" in rep.lines()[0]
    d = rep.to_dict()["outputs"][0]
    assert d["rule"] == "quant-step" and d["quant_source"]
    # two steps is a mismatch; explicit tolerances switch the rule off
    assert not nnport.verify(qdq, _Flipped(nnport.to_torch(qdq), 2 * step)).ok
    assert not nnport.verify(qdq, b, atol=1e-6).ok
    # an unquantized model keeps the dtype rule
    fp = nnport.verify(qdq.parent / "fp32.onnx", nnport.to_torch(qdq.parent / "fp32.onnx"))
    assert fp.outputs[0].rule == "dtype"


def test_cli_json_names_the_rule(qdq, tmp_path):
    from tests.util import run_cli

    py = tmp_path / "m.py"
    nnport.convert(qdq, py, verify=False)
    rc, out, err = run_cli("verify", qdq, py, "--json", "--quiet")
    assert rc == 0, err
    assert json.loads(out)["outputs"][0]["rule"] == "quant-step"


def _shifted_and_broken(qdq, path):
    """``qdq`` where the activation before the fc layer is nudged by half a step (it sits on the grid) before
    it is quantized (int8 boundary flips, each one step), and whose fc Gemm is wrong (a real
    bug, later in the graph)."""
    m = onnx.load(str(qdq))
    g = m.graph
    flat = next(n for n in g.node if n.op_type == "Flatten").output[0]
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == flat)
    scale = float(numpy_helper.to_array(next(t for t in g.initializer if t.name == q.input[1])))
    q.input[0] = "nudged"
    g.initializer.append(numpy_helper.from_array(np.array(scale * 0.5001, np.float32), "nudge"))
    g.node.insert(list(g.node).index(q), helper.make_node("Add", [flat, "nudge"], ["nudged"]))
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    for a in list(gemm.attribute):
        if a.name == "alpha":
            gemm.attribute.remove(a)
    gemm.attribute.append(helper.make_attribute("alpha", 1.5))
    onnx.save(m, str(path))
    return path


def test_locate_looks_past_boundary_flips(qdq, tmp_path):
    b = _shifted_and_broken(qdq, tmp_path / "b.onnx")
    res = locate(qdq, b, scan_all=True)
    flips = [t for t in res.trace if t.ok and t.note == "within one quantization step"]
    assert flips, "the nudge must flip some int8 values for this test to mean anything"
    assert flips[0].index < res.index
    assert res.found and res.op == "Gemm", res.lines()
    res = locate(qdq, b)  # the default stop-at-first search finds the same node
    assert res.found and res.op == "Gemm", res.lines()


@pytest.mark.parametrize("form", ["path", "proto", "ir"])
def test_onnxruntime_runs_a_qdq_model_as_onnx_defines_it(qdq, tmp_path, form):
    """The reference session of a QDQ model stays at onnxruntime's basic level: its fused int8
    kernels differ from the graph's definition (by 12 to 29 steps on an x86 CPU without VNNI,
    tests/ncnn_emit/test_int8.py); a float model keeps every optimization."""
    import onnx_ir as ir
    import onnxruntime as ort

    from nnport.verify.ort import OrtRunner

    fp32 = qdq.parent / "fp32.onnx"
    levels = {}
    for name, path in (("qdq", qdq), ("fp32", fp32)):
        src = {"path": path, "proto": onnx.load(str(path)), "ir": ir.load(str(path))}[form]
        opts = OrtRunner(src).sess.get_session_options()
        levels[name] = opts.graph_optimization_level
    assert levels == {"qdq": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                      "fp32": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
