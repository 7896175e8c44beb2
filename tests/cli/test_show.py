"""``nnport show``: the graph in Netron's viewer, served locally and offline; checked in a real
headless Chromium (the page lays the graph out in a web worker, so it is driven over the
DevTools protocol: tests/cdp.py)."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from cdp import Browser, chromium, png_pixels
from util import assert_clean_error, run_cli

netron = pytest.importorskip("netron", reason="pip install 'nnport[show]'")


def _cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool1", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Sigmoid", ["p"], ["prob"], name="sigmoid1")]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("image", T.FLOAT,
                                                                        [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("prob", T.FLOAT, [1, 4, 4, 4])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_missing_viewer_is_one_line(tmp_path, monkeypatch, capsys):
    from nnport.cli import main

    onnx.save(_cnn(), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "netron", None)  # import netron -> ImportError
    rc = main(["show", str(tmp_path / "m.onnx"), "--no-browser"])
    err = capsys.readouterr().err
    assert_clean_error(rc, "", err, "pip install 'nnport[show]'", "netron")


def test_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "m.txt").write_text("x")
    assert_clean_error(*run_cli("show", tmp_path / "m.txt"), ".onnx")
    assert_clean_error(*run_cli("show", tmp_path / "nope.onnx"), "no such file")
    (tmp_path / "bad.onnx").write_bytes(b"\x08garbage")
    assert_clean_error(*run_cli("show", tmp_path / "bad.onnx"), "bad.onnx")
    (tmp_path / "m.param").write_text("7767517\n1 1\nInput in 0 1 in\n")
    assert_clean_error(*run_cli("show", tmp_path / "m.param", "--no-browser"), "m.bin")


def test_page_is_offline_and_dialog_free():
    """What we change in Netron's page: no connection but to this server, no update or
    cookie dialog, no usage reporting (version 0.0.0 is Netron's development build)."""
    from pathlib import Path

    from nnport.show import index_html, viewer_dir

    html = index_html(viewer_dir(), 'a "model".onnx').decode()
    assert "connect-src 'self'" in html
    assert '<meta name="version" content="0.0.0">' in html
    assert '<meta name="file" content="/data/a%20%22model%22.onnx">' in html
    assert 'content="a &quot;model&quot;.onnx"' in html
    assert html.count('name="version"') == 1 and html.count('name="date"') == 1
    assert Path(viewer_dir() / "index.html").is_file()


class _Served:
    """``nnport show MODEL --no-browser`` in a subprocess; ``url`` from its first line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "nnport.cli", "show", *map(str, args),
                                      "--no-browser", "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        line = self.proc.stdout.readline()
        assert " at http://" in line, (line, self.proc.stderr.read() if self.proc.poll() else "")
        self.url = line.split(" at ", 1)[1].split()[0]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _not_blank(png: bytes) -> float:
    """The fraction of pixels that differ from the most common colour (the background)."""
    width, bpp, rows = png_pixels(png)
    pixels = collections.Counter()
    for row in rows[::2]:
        for x in range(0, width * bpp, bpp * 2):
            pixels[row[x:x + 3]] += 1
    total = sum(pixels.values())
    return 1 - pixels.most_common(1)[0][1] / total


def _shown(served: _Served, shot) -> list[str]:
    """Load the page headless, wait for the graph; returns the node labels drawn (and checks
    that nothing but the local server was contacted and the screenshot is not blank)."""
    with Browser() as browser:
        browser.goto(served.url)
        browser.wait_for("document.body.classList.contains('default')", timeout=120)
        labels = browser.eval(
            "Array.from(document.querySelectorAll('#canvas g.node text')).map(t => t.textContent)")
        png = browser.screenshot()
        urls = browser.requested_urls()
    shot.write_bytes(png)
    outside = [u for u in urls if not u.startswith(served.url) and
               not u.startswith(("data:", "blob:"))]
    assert not outside, outside
    assert _not_blank(png) > 0.002, f"blank screenshot {shot}"
    return labels


needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run "
                                    "must apt-get install -y chromium)")


@needs_chromium
@pytest.mark.slow
def test_show_onnx_param_and_py_in_chromium(tmp_path):
    src = tmp_path / "cnn.onnx"
    onnx.save(_cnn(), src)
    served = _Served(src)
    try:
        labels = _shown(served, tmp_path / "onnx.png")
        # only the model's folder, by plain file name
        with urllib.request.urlopen(served.url + "data/cnn.onnx") as r:
            assert r.read() == src.read_bytes()
        for bad in ("data/..%2Fcnn.onnx", "data/%2Fetc%2Fpasswd", "..%2F..%2Fetc%2Fpasswd"):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(served.url + bad)
    finally:
        assert served.stop() in (0, 130)
    for op in ("Conv", "Relu", "MaxPool", "Sigmoid", "image", "prob"):
        assert op in labels, labels

    # ncnn: Netron reads the .param and its .bin
    rc, out, err = run_cli("convert", src, tmp_path / "ncnn" / "cnn.param")
    assert rc == 0, err
    served = _Served(tmp_path / "ncnn" / "cnn.param")
    try:
        labels = _shown(served, tmp_path / "param.png")
    finally:
        served.stop()
    assert "Convolution" in labels and "Pooling" in labels and "Sigmoid" in labels, labels

    # a generated .py: exported to ONNX (its load(), at --input-shape)
    rc, out, err = run_cli("convert", src, tmp_path / "py" / "cnn.py")
    assert rc == 0, err
    served = _Served(tmp_path / "py" / "cnn.py", "--input-shape", "image=1,3,8,8")
    try:
        labels = _shown(served, tmp_path / "py.png")
    finally:
        served.stop()
    assert "Conv" in labels and "MaxPool" in labels and "Sigmoid" in labels, labels


@pytest.mark.parametrize("inherited", ["ignored", "blocked"])
def test_ctrl_c_stops_even_when_sigint_was_ignored_or_blocked(tmp_path, inherited):
    """A child inherits SIGINT ignored (disposition) or blocked (mask) across exec; the full
    suite's workers passed such a state on, and ``nnport show`` then never stopped on Ctrl-C
    (test_show_onnx_param_and_py_in_chromium timed out in two full runs, never alone)."""
    src = tmp_path / "cnn.onnx"
    onnx.save(_cnn(), src)

    def pre():
        if inherited == "ignored":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    proc = subprocess.Popen([sys.executable, "-m", "nnport.cli", "show", str(src),
                             "--no-browser", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=pre,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert " at http://" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
