"""verify --locate --report also writes the per-node errors as Model Explorer node data; checked
against Model Explorer's own ONNX adapter and data classes, and shown on the graph in a real
headless Chromium through ``nnport show --node-data``."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from cdp import Browser, chromium, png_pixels
from nnport.verify.locate import locate
from nnport.verify.node_data import FIRST_COLOR, OK_COLOR, node_data, node_data_path
from tools.cnn import cnn_model
from util import assert_clean_error, run_cli
from verify.test_report_html import _bad_copy

NNPORT = [sys.executable, "-m", "nnport.cli"]


def _verify_report(tmp_path, a, b):
    onnx.save(a, tmp_path / "a.onnx")
    onnx.save(b, tmp_path / "b.onnx")
    page = tmp_path / "report.html"
    p = subprocess.run([*NNPORT, "verify", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"),
                        "--locate", "--report", str(page)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 1, p.stderr
    overlay = tmp_path / "report.nodedata.json"
    assert overlay == node_data_path(page) and overlay.is_file()
    assert str(overlay) in p.stdout
    return json.loads(overlay.read_text())  # plain JSON: no NaN or Infinity


def test_report_writes_node_data_beside_it(tmp_path):
    data = _verify_report(tmp_path, cnn_model(), _bad_copy())
    assert list(data) == ["cnn"]  # the graph's name
    results = data["cnn"]["results"]
    # conv2's weight is corrupted: it is the first diverging node, everything before is ok
    assert results["conv2"]["bgColor"] == FIRST_COLOR and results["conv2"]["value"] > 0.01
    for name in ("conv1", "bn1", "relu1", "pool1"):
        assert results[name] == {"value": 0.0, "bgColor": OK_COLOR}, name
    assert results["relu2"]["value"] > 0.01 and results["relu2"]["bgColor"] != OK_COLOR


def _unnamed() -> onnx.ModelProto:
    """No node names and an empty graph name: Model Explorer's adapter names the nodes with
    onnx_ir's NameFixPass."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Exp", ["r"], ["y"])]
    g = helper.make_graph(nodes, "", [helper.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [2, 4])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _bad_unnamed() -> onnx.ModelProto:
    m = _unnamed()
    m.graph.node[1].op_type = "Abs"  # Relu -> Abs: the second node diverges
    return m


def test_unnamed_nodes_get_the_viewers_ids():
    res = locate(_unnamed(), _bad_unnamed(), scan_all=True)
    data = node_data(res)
    assert list(data) == [""]
    results = data[""]["results"]
    assert len(set(results)) == 3 and all(results)
    first, second, _ = [n for n in results]
    assert results[second]["bgColor"] == FIRST_COLOR
    assert results[first]["bgColor"] == OK_COLOR


def test_infinite_errors_stay_valid_json(tmp_path):
    res = locate(_unnamed(), _bad_unnamed(), scan_all=True)
    res.trace[-1].max_rel_err = float("inf")
    from nnport.verify.node_data import write_node_data

    write_node_data(res, tmp_path / "n.json")
    text = (tmp_path / "n.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert max(r["value"] for r in json.loads(text)[""]["results"].values()) >= 1e300


@pytest.mark.parametrize("model", [cnn_model, _unnamed], ids=["named", "unnamed"])
def test_keys_are_the_node_ids_model_explorer_draws(tmp_path, model):
    """Read by Model Explorer's own ONNX adapter and node-data classes (when installed)."""
    pytest.importorskip("model_explorer_onnx")
    import dacite
    from model_explorer.node_data_builder import GraphNodeData
    from model_explorer_onnx.main import ONNXAdapter

    a = model()
    b = _bad_copy() if model is cnn_model else _bad_unnamed()
    onnx.save(a, tmp_path / "a.onnx")
    data = node_data(locate(a, b, scan_all=True))
    graphs = {g.id: {n.id for n in g.nodes}
              for g in ONNXAdapter().convert(str(tmp_path / "a.onnx"), {})["graphs"]}
    for graph_id, gdata in data.items():
        assert graph_id in graphs
        assert set(gdata["results"]) <= graphs[graph_id]
        assert len(gdata["results"]) == len(a.graph.node)
        dacite.from_dict(GraphNodeData, gdata, config=dacite.Config(strict=True))


def test_show_node_data_bad_inputs_are_one_line(tmp_path):
    onnx.save(cnn_model(), tmp_path / "a.onnx")
    (tmp_path / "nd.json").write_text(json.dumps({"cnn": {"results": {}}}))
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert_clean_error(*run_cli("show", tmp_path / "a.onnx", "--node-data", tmp_path / "no.json"),
                       "no.json")
    assert_clean_error(*run_cli("show", tmp_path / "a.onnx", "--node-data", tmp_path / "bad.json"),
                       "bad.json")
    assert_clean_error(*run_cli("show", tmp_path / "a.onnx", "--node-data",
                                tmp_path / "list.json"), "list.json")
    (tmp_path / "m.param").write_text("7767517\n1 1\nInput in 0 1 in\n")
    assert_clean_error(*run_cli("show", tmp_path / "m.param", "--node-data", tmp_path / "nd.json"),
                       "m.param")


def _red_pixels(png: bytes) -> int:
    width, bpp, rows = png_pixels(png)
    want = bytes(int(FIRST_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    return sum(row[x:x + 3] == want for row in rows for x in range(0, width * bpp, bpp))


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run must "
                    "apt-get install -y chromium)")
@pytest.mark.slow
def test_overlay_shows_in_model_explorer(tmp_path):
    pytest.importorskip("model_explorer_onnx")
    _verify_report(tmp_path, cnn_model(), _bad_copy())
    proc = subprocess.Popen([*NNPORT, "show", str(tmp_path / "a.onnx"), "--node-data",
                             str(tmp_path / "report.nodedata.json"), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "nnport show exited"
            if "?data=" in line:
                url = line[line.index("http"):].strip()
        assert url, "Model Explorer never printed its address"
        with Browser(1400, 900) as browser:
            browser.goto(url)
            text = browser.wait_for(
                "document.body.innerText.includes('nnport verify: max relative error') && "
                "document.body.innerText.includes('0.2649') && document.body.innerText",
                timeout=120)
            time.sleep(1)
            png = browser.screenshot()
        (tmp_path / "overlay.png").write_bytes(png)
        assert "Conv" in text
        assert _red_pixels(png) > 50, f"no node coloured as the first divergence: {tmp_path}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_missing_model_explorer_is_one_line(tmp_path, monkeypatch, capsys):
    from nnport.cli import main

    onnx.save(cnn_model(), tmp_path / "a.onnx")
    (tmp_path / "nd.json").write_text(json.dumps({"cnn": {"results": {}}}))
    monkeypatch.setitem(sys.modules, "model_explorer", None)  # import -> ImportError
    rc = main(["show", str(tmp_path / "a.onnx"), "--node-data", str(tmp_path / "nd.json"),
               "--no-browser"])
    assert_clean_error(rc, "", capsys.readouterr().err, "Model Explorer", "nnport[show]")
