"""``nnport convert model.onnx model.pt`` writes a TRACED TorchScript module wherever the graph
allows (what pnnx and other TorchScript consumers read: no ``prim::CallFunction`` helpers, no
Python control flow), and a scripted one only for control flow on values, saying so."""
from __future__ import annotations

import numpy as np
import onnx
import torch

import nnport
from tests.models.builders import get_case
from tests.torch_emit.ops.test_op_control import if_loop_model
from tests.util import ort_run, run_cli


def _graph_text(pt) -> str:
    m = torch.jit.load(str(pt))
    return str(m.inlined_graph), m


def test_onnx_to_pt_is_traced_and_stays_dynamic(tmp_path):
    case = get_case("torch_detect_torchscript")  # shape arithmetic, TopK, Gather: dynamic H, W
    src = tmp_path / "m.onnx"
    onnx.save(case.model(), src)
    res = nnport.convert(str(src), tmp_path / "m.pt")
    assert res.ok
    assert res.notes == ["TorchScript by torch.jit.trace"], res.notes
    text, loaded = _graph_text(tmp_path / "m.pt")
    assert "prim::CallFunction" not in text and "prim::If" not in text
    assert "prim::Loop" not in text
    for variant in (0, 1):  # the trace kept the dynamic dims
        feeds = case.feeds(variant)
        ref = ort_run(case.model(), feeds)
        with torch.no_grad():
            got = loaded(*(torch.from_numpy(v) for v in feeds.values()))
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g.numpy(), r, rtol=1e-4, atol=1e-4)


def test_control_flow_on_values_is_scripted_and_said(tmp_path):
    src = tmp_path / "flow.onnx"
    onnx.save(if_loop_model(), src)
    res = nnport.convert(str(src), tmp_path / "flow.pt",
                         inputs={"x": np.array([1.0, -2.0, 0.5], np.float32),
                                 "n": np.array(3, np.int64), "flag": np.array(True)})
    assert res.ok
    assert len(res.notes) == 1 and "torch.jit.script" in res.notes[0]
    assert "If" in res.notes[0] and "Loop" in res.notes[0]
    loaded = torch.jit.load(str(tmp_path / "flow.pt"))
    x = torch.tensor([1.0, -2.0, 0.5])
    for flag in (True, False):  # both branches survive
        feeds = {"x": x.numpy(), "n": np.array(2, np.int64), "flag": np.array(flag)}
        ref = ort_run(if_loop_model(), feeds)
        with torch.no_grad():
            got = loaded(x, torch.tensor(2), torch.tensor(flag))
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g.numpy(), r, rtol=1e-5)


def test_cli_says_how_the_pt_was_made(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(get_case("paddle_style").model(), src)
    rc, out, err = run_cli("convert", src, tmp_path / "m.pt")
    assert rc == 0, err
    assert "torch.jit.trace" in out + err
