"""``--control-flow cond``: an If on a runtime value becomes torch.cond, so torch.export keeps
both branches (a Python ``if`` on a tensor is a data-dependent guard there) and the exported
program matches onnxruntime whichever branch the input takes."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from nnport.convert import prepare  # noqa: E402
from nnport.errors import InputError  # noqa: E402
from nnport.torch_emit import build_module, generate  # noqa: E402


def _if_model() -> onnx.ModelProto:
    """y, z = sum(x) > 0 ? (relu(x @ W), x) : (-2 * x, |x| + x); x: [batch, 4].  The then
    branch reads the outer x and weight and returns x itself (an alias torch.cond must not
    return as is); the else branch reads x twice."""
    f = TensorProto.FLOAT
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "W")
    two = numpy_helper.from_array(np.array(-2.0, np.float32), "two")
    then_g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["t_mm"]),
         helper.make_node("Relu", ["t_mm"], ["t_y"]),
         helper.make_node("Identity", ["x"], ["t_z"])],
        "then", [], [helper.make_tensor_value_info("t_y", f, ["batch", 4]),
                     helper.make_tensor_value_info("t_z", f, ["batch", 4])])
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["e_y"]),
         helper.make_node("Abs", ["x"], ["e_abs"]),
         helper.make_node("Add", ["e_abs", "x"], ["e_z"])],
        "else", [], [helper.make_tensor_value_info("e_y", f, ["batch", 4]),
                     helper.make_tensor_value_info("e_z", f, ["batch", 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Constant", [], ["zero"],
                              value=numpy_helper.from_array(np.array(0.0, np.float32))),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y", "z"], name="branch",
                              then_branch=then_g, else_branch=else_g)]
    g = helper.make_graph(nodes, "if_graph", [helper.make_tensor_value_info("x", f, ["batch", 4])],
                          [helper.make_tensor_value_info("y", f, ["batch", 4]),
                           helper.make_tensor_value_info("z", f, ["batch", 4])], [w, two])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _inputs():
    rng = np.random.default_rng(1)
    for batch in (2, 5):
        x = np.abs(rng.standard_normal((batch, 4))).astype(np.float32)
        yield x  # sum > 0: then
        yield -x  # sum < 0: else


def test_default_is_a_python_if():
    source, _ = generate(prepare(_if_model()))
    assert "if bool(" in source and "torch.cond" not in source


def test_cond_export_keeps_both_branches():
    proto = _if_model()
    source, state = generate(prepare(proto), control_flow="cond")
    assert "torch.cond(" in source and "def then_branch(" in source, source
    assert "# If nodes on runtime values are torch.cond calls" in source
    module = build_module(source, state, name="cond_test")
    x0 = next(_inputs())
    ep = torch.export.export(module, (torch.from_numpy(x0),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    code = ep.graph_module.code
    assert "torch.ops.higher_order.cond" in code, code
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    seen = set()
    for x in _inputs():
        ref = sess.run(None, {"x": x})
        seen.add(bool(x.sum() > 0))
        for name, m in (("eager", module), ("exported", ep.module())):
            with torch.no_grad():
                got = m(torch.from_numpy(x))
            for r, g in zip(ref, got):
                np.testing.assert_allclose(g.numpy(), r, rtol=1e-5, atol=1e-5,
                                           err_msg=f"{name}, batch {x.shape[0]}")
    assert seen == {True, False}


def test_bad_control_flow_value_is_one_line():
    with pytest.raises(InputError, match="--control-flow 'while'"):
        generate(prepare(_if_model()), control_flow="while")


def test_cli_control_flow(tmp_path):
    from util import assert_clean_error
    from util import run_cli as run

    src = tmp_path / "m.onnx"
    onnx.save(_if_model(), src)
    rc, out, err = run("convert", src, tmp_path / "m.py", "--control-flow", "cond")
    assert rc == 0, err
    assert "torch.cond(" in (tmp_path / "m.py").read_text()
    rc, out, err = run("convert", src, tmp_path / "m.param", "--control-flow", "cond")
    assert_clean_error(rc, out, err, "--control-flow does not apply to .param outputs")
    rc, out, err = run("convert", src, tmp_path / "m2.py", "--control-flow", "while")
    assert_clean_error(rc, out, err, "--control-flow", "while")


class _Gate(torch.nn.Module):
    """A model with torch.cond of its own: the dynamo exporter writes an If node."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.scale = torch.nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x):
        def big(x):
            return torch.relu(self.fc(x))

        def small(x):
            return x * self.scale

        return torch.cond(x.abs().mean() > 1.0, big, small, (x,))


@pytest.mark.slow
def test_torch_cond_round_trip():
    import warnings

    torch.manual_seed(0)
    model = _Gate().eval()
    x = torch.randn(2, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = torch.onnx.export(model, (x,), dynamo=True, verbose=False,
                                  dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)).model_proto
    assert "If" in [n.op_type for n in proto.graph.node]
    source, state = generate(prepare(proto), control_flow="cond")
    module = build_module(source, state, name="cond_round_trip")
    assert {"fc.weight", "fc.bias", "scale"} <= set(module.state_dict())
    ep = torch.export.export(module, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    assert "torch.ops.higher_order.cond" in ep.graph_module.code
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for xx in (x * 0.1, x * 10, torch.randn(5, 8) * 0.1, torch.randn(5, 8) * 10):
        with torch.no_grad():
            ref = model(xx)
            got = ep.module()(xx)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: xx.numpy()})[0],
                                   ref.numpy(), rtol=1e-5, atol=1e-5)


def test_locate_reads_cond_code(tmp_path):
    """verify --locate in a file written with --control-flow cond points at its own lines."""
    from safetensors.numpy import load_file, save_file

    import nnport
    from nnport.verify.locate import locate

    src = tmp_path / "m.onnx"
    onnx.save(_if_model(), src)
    py = tmp_path / "m.py"
    assert nnport.convert(src, py, control_flow="cond").ok
    st = py.with_suffix(".safetensors")
    w = load_file(st)
    w["W"] += 1.0
    save_file(w, st)
    res = locate(src, py, inputs={"x": np.abs(next(_inputs()))})
    assert res.found and res.node == "branch", res.lines()
    assert res.source["file"] == str(py), res.source
    line = py.read_text().splitlines()[res.source["line"] - 1]
    assert line.strip() == res.source["text"].strip()
    assert "then_branch" in line or "torch.cond(" in line, line
