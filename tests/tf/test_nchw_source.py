"""``--nchw`` travels with the source (formats.SourcePath), not as process state."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("nchw") / "small.keras"
    keras.Model(inp, out).save(path)
    return path


def test_source_path_option_makes_inputs_nchw(small_cnn, tmp_path):
    from nnport import tf_source
    from nnport.convert import convert
    from nnport.formats import SourcePath

    res = convert(SourcePath(small_cnn, nchw=True), tmp_path / "a.py")
    assert res.ok and res.report.inputs["image"]["shape"] == [1, 3, 16, 16]
    assert not tf_source.nchw()  # nothing left behind for the next conversion
    res = convert(str(small_cnn), tmp_path / "b.py")
    assert res.ok and res.report.inputs["image"]["shape"] == [1, 16, 16, 3]


def test_cli_nchw(small_cnn, tmp_path):
    out = subprocess.run([sys.executable, "-m", "nnport.cli", "convert", str(small_cnn),
                          str(tmp_path / "m.py"), "--nchw", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["inputs"]["image"]["shape"] == [1, 3, 16, 16]
