"""TensorFlow/Keras sources: build models here (random weights, no downloads), convert them with
nnport, and compare with TensorFlow itself."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")

from nnport.convert import convert  # noqa: E402
from nnport.verify import verify  # noqa: E402

NNPORT = [sys.executable, "-m", "nnport.cli"]


def _forward(py: str) -> str:
    src = open(py).read()
    return src[src.index("def forward"):src.index("\ndef load")]


def _convert_py(src, tmp_path, name="model"):
    out = tmp_path / name
    out.mkdir()
    res = convert(str(src), out / "model.py", rtol=1e-4)
    assert res.report is not None and res.report.a == str(src)
    assert res.ok, "\n".join(res.report.lines())
    return out / "model.py"


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    keras.utils.set_random_seed(0)
    m = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    path = tmp_path_factory.mktemp("mnv2") / "mobilenet.keras"
    m.save(path)
    return path


def test_mobilenetv2_matches_tensorflow_and_is_nchw_inside(mobilenet, tmp_path):
    py = _convert_py(mobilenet, tmp_path)
    fwd = _forward(str(py))
    # NHWC in, one permute at the input, none between the convolutions
    assert fwd.count(".permute(") <= 2, fwd
    first_permute = fwd.index(".permute(")
    assert first_permute < fwd.index("self."), "the permute must come before the first layer"
    # ZeroPadding2D went into the convolutions; what is left is the asymmetric part of TF's
    # "same" padding, which nn.Conv2d cannot express
    for pads in re.findall(r"F\.pad\([^,]+, \[([0-9, ]+)\]\)", fwd):
        left, right, top, bottom = map(int, pads.split(","))
        assert (left, top) != (right, bottom), pads
    assert fwd.count("F.pad(") == len(re.findall(r"F\.pad\([^,]+, \[", fwd))
    src = open(py).read()
    assert src.count("nn.Conv2d(") == 52
    # the generated module takes NHWC like the Keras model
    from nnport.verify.torch_runner import load_generated

    mod = load_generated(py)
    import torch

    with torch.no_grad():
        assert tuple(mod(torch.zeros(2, 96, 96, 3)).shape) == (2, 1000)


def test_mobilenetv2_nchw_option(mobilenet, tmp_path):
    from nnport.tf_source import set_nchw

    set_nchw(True)
    try:
        py = _convert_py(mobilenet, tmp_path)
        rep = verify(str(mobilenet), str(py))  # TensorFlow gets the NHWC transpose of the input
        assert rep.ok and rep.inputs[next(iter(rep.inputs))]["shape"] == [1, 3, 96, 96]
    finally:
        set_nchw(None)
    assert ".permute(" not in _forward(str(py))


def test_resnet50_matches_tensorflow(tmp_path):
    keras.utils.set_random_seed(1)
    m = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "resnet.keras"
    m.save(path)
    py = _convert_py(path, tmp_path)
    fwd = _forward(str(py))
    assert fwd.count(".permute(") <= 2
    assert open(py).read().count("nn.Conv2d(") == 53


def test_conv1d_text_model_with_embedding(tmp_path):
    keras.utils.set_random_seed(2)
    inp = keras.Input((20,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(100, 16)(inp)
    x = keras.layers.Conv1D(12, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    out = keras.layers.Dense(3, name="logits")(x)
    path = tmp_path / "text.keras"
    keras.Model(inp, out).save(path)
    py = _convert_py(path, tmp_path)
    src = open(py).read()
    assert "nn.Embedding(" in src or "F.embedding" in src or "[" in _forward(str(py))
    assert "nn.Conv1d(" in src
    # tokens must cover the whole vocabulary, not only the small random ints
    ids = np.random.default_rng(0).integers(0, 100, (2, 20)).astype(np.int32)
    rep = verify(str(path), str(py), inputs={"tokens": ids})
    assert rep.ok, "\n".join(rep.lines())


def test_lstm_gru_model_becomes_nn_lstm_and_nn_gru(tmp_path):
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 6), name="seq")
    x = keras.layers.LSTM(8, return_sequences=True)(inp)
    seq = keras.layers.GRU(5, return_sequences=True, name="gru_seq")(x)
    last = keras.layers.GRU(4, name="gru_last")(seq)
    path = tmp_path / "rnn.keras"
    keras.Model(inp, [seq, last]).save(path)
    py = _convert_py(path, tmp_path)
    src = open(py).read()
    assert src.count("nn.LSTM(") == 1 and src.count("nn.GRU(") == 2, src
    assert "for " not in _forward(str(py))  # no loop left
    rep = verify(str(path), str(py), input_shapes={"seq": (3, 12, 6)}, seed=5)
    assert rep.ok and [o.name for o in rep.outputs] == ["gru_seq", "gru_last"]


def _small_cnn():
    keras.utils.set_random_seed(4)
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(2, name="out")(x))


def test_saved_model_folder(tmp_path):
    folder = tmp_path / "saved"
    _small_cnn().export(str(folder), verbose=False)
    py = _convert_py(folder, tmp_path)
    assert "nn.Conv2d(" in open(py).read()


def test_h5_file_cli_convert_and_verify(tmp_path):
    path = tmp_path / "small.h5"
    _small_cnn().save(path)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run([*NNPORT, "convert", str(path), str(out / "model.py")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "MATCH" in p.stdout and "against " + str(path) in p.stdout
    assert p.stderr == ""  # TensorFlow's start-up banner does not reach the user
    p = subprocess.run([*NNPORT, "verify", str(path), str(out / "model.py")],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "MATCH" in p.stdout, p.stdout + p.stderr


def test_to_ncnn(tmp_path):
    pytest.importorskip("ncnn")
    path = tmp_path / "small.keras"
    _small_cnn().save(path)
    res = convert(str(path), tmp_path / "model.param")
    assert res.ok and (tmp_path / "model.bin").is_file()


def test_verify_catches_a_wrong_model(tmp_path):
    """The comparison is against TensorFlow: a different Keras model must not match."""
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    _small_cnn().save(a)
    py = _convert_py(a, tmp_path)
    m = _small_cnn()
    m.layers[1].set_weights([w + 0.5 for w in m.layers[1].get_weights()])
    m.save(b)
    rep = verify(str(b), str(py))
    assert not rep.ok


def _cli(*args, env=None):
    return subprocess.run([*NNPORT, *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("make,needle", [
    (lambda p: (p / "m.keras").write_bytes(b""), "file is empty"),
    (lambda p: (p / "m.keras").write_bytes(b"not a zip"), "cannot load as a Keras model"),
    (lambda p: None, "no such file"),
])
def test_bad_keras_inputs_are_one_line_errors(tmp_path, make, needle):
    make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    p = _cli("convert", tmp_path / "m.keras", out / "model.py")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "m.keras" in lines[0], p.stderr
    assert list(out.iterdir()) == []


def test_folder_without_saved_model_pb(tmp_path):
    (tmp_path / "empty").mkdir()
    p = _cli("verify", tmp_path / "empty", tmp_path / "empty")
    assert p.returncode == 2 and "saved_model.pb" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_missing_tensorflow_names_the_extra(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK")
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['tf2onnx'] = None\n"
            "from nnport.cli import main\n"
            f"sys.exit(main(['convert', {str(path)!r}, {str(tmp_path / 'model.py')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2
    assert re.search(r"model\.keras: TensorFlow sources need the tf extra: "
                     r"pip install 'nnport\[tf\]'", p.stderr), p.stderr
    assert not (tmp_path / "model.py").exists()
