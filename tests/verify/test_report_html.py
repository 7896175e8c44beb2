"""verify --report: a self-contained page; the chart's SVG survives a real browser (Chromium)."""
import copy
import shutil
import subprocess
import sys
import tempfile

import onnx
import pytest
from onnx import numpy_helper

from nnport.verify.locate import locate
from nnport.verify.report_html import write_html_report
from tools.cnn import cnn_model

NNPORT = [sys.executable, "-m", "nnport.cli"]


def _bad_copy():
    m = copy.deepcopy(cnn_model())
    for t in m.graph.initializer:
        if t.name == "w2":
            arr = numpy_helper.to_array(t).copy()
            arr[0, 0, 0, 0] += 1.0
            t.CopyFrom(numpy_helper.from_array(arr, "w2"))
    return m


def test_report_has_the_normal_file_mode(tmp_path):
    """Like every other output: 0666 less the umask, not mkstemp's private 0600."""
    import os
    import stat

    res = locate(cnn_model(), _bad_copy(), scan_all=True, chunk_size=4)
    page = tmp_path / "r.html"
    write_html_report(res.report, res, page)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(page.stat().st_mode) == 0o666 & ~mask


def test_report_content(tmp_path):
    res = locate(cnn_model(), _bad_copy(), scan_all=True, chunk_size=4)
    page = tmp_path / "r.html"
    write_html_report(res.report, res, page)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "MISMATCH" in text
    assert '<svg id="error-chart"' in text and 'id="located-node"' in text
    assert text.count('class="point"') == res.compared == 20
    assert "conv2" in text and "<script" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (.ci/run must "
                    "apt-get install -y chromium)")
def test_report_renders_in_chromium(tmp_path):
    src = tmp_path / "a.onnx"
    bad = tmp_path / "b.onnx"
    onnx.save(cnn_model(), src)
    onnx.save(_bad_copy(), bad)
    page = tmp_path / "report.html"
    p = subprocess.run([*NNPORT, "verify", str(src), str(bad), "--locate", "--report", str(page)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    assert page.is_file() and "first diverging node 'conv2'" in p.stdout
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=180).stdout
    assert '<svg id="error-chart"' in dom
    assert "<polyline" in dom and 'id="located-node"' in dom and 'id="located-label"' in dom
    assert dom.count('class="point"') == 20
    assert "conv2 (Conv)" in dom
