"""nnport extract and nnport edit: runnable results, clean errors, atomic output."""

import numpy as np
import onnx
import pytest

from nnport.tools import edit, extract
from tools.cnn import cnn_model
from util import ort_run

from util import run_cli as run


def clean_error(rc, err, *needles):
    assert rc == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


def _intermediates(model, names, feeds):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in names:
        m.graph.output.append(onnx.ValueInfoProto(name=n))
    outs = ort_run(m, feeds)
    return dict(zip([o.name for o in m.graph.output], outs))


@pytest.fixture()
def src(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(cnn_model(), p)
    return p


def test_extract_middle_is_runnable_and_equal(src, tmp_path):
    rc, out, err = run("extract", src, tmp_path / "sub.onnx", "--inputs", "p1",
                       "--outputs", "c2,p2")
    assert rc == 0, err
    sub = onnx.load(tmp_path / "sub.onnx")
    onnx.checker.check_model(sub)
    assert [i.name for i in sub.graph.input] == ["p1"]
    assert [o.name for o in sub.graph.output] == ["c2", "p2"]
    assert {n.name for n in sub.graph.node} == {"conv2", "transpose_id", "relu2", "pool2"}
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    ref = _intermediates(cnn_model(), ["p1", "c2", "p2"], {"x": x})
    got = ort_run(sub, {"p1": ref["p1"]})
    np.testing.assert_allclose(got[0], ref["c2"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], ref["p2"], rtol=1e-5, atol=1e-6)


def test_extract_from_graph_input(src):
    sub = extract(src, inputs="x", outputs="r1")
    assert [n.op_type for n in sub.graph.node] == ["Identity", "Conv", "BatchNormalization",
                                                   "Relu"]


def test_extract_errors(src, tmp_path):
    rc, _, err = run("extract", src, tmp_path / "s.onnx", "--inputs", "p1", "--outputs", "c22")
    clean_error(rc, err, "c22", "did you mean", "'c2'")
    rc, _, err = run("extract", src, tmp_path / "s.onnx", "--inputs", "nope", "--outputs", "c2")
    clean_error(rc, err, "--inputs", "nope")
    rc, _, err = run("extract", src, tmp_path / "s.onnx", "--inputs", "p2", "--outputs", "c2")
    clean_error(rc, err, "'x'", "not in --inputs")
    assert not (tmp_path / "s.onnx").exists()


def test_edit_rename_output_shape(src, tmp_path):
    dst = tmp_path / "e.onnx"
    rc, out, err = run("edit", src, dst, "--rename", "x=image", "--rename", "conv1=first_conv",
                       "--output", "c2", "--input-shape", "x=?,3,?,?")
    assert rc == 0, err
    m = onnx.load(dst)
    assert m.graph.input[0].name == "image"
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, True, False, False]
    assert "first_conv" in [n.name for n in m.graph.node]
    assert [o.name for o in m.graph.output] == ["prob", "c2"]
    x = np.random.default_rng(0).standard_normal((1, 3, 40, 40)).astype(np.float32)
    # spatial dims are symbolic now (the fc layer still needs 32x32 to run, so check c2 only
    # on 40x40 through an extract)
    sub = extract(m, inputs="image", outputs="c2")
    assert ort_run(sub, {"image": x})[0].shape == (1, 4, 20, 20)


def test_edit_fixed_shape_reinfers(src):
    res = edit(src, input_shapes={"x": (4, 3, 32, 32)})
    out = res.model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in out] == [4, 5]


def test_edit_opset_is_verified(tmp_path):
    src = tmp_path / "m13.onnx"
    onnx.save(cnn_model(opset=13), src)
    dst = tmp_path / "o.onnx"
    rc, out, err = run("edit", src, dst, "--opset", "18")
    assert rc == 0, err + out
    assert "MATCH" in out
    m = onnx.load(dst)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [18]
    # a conversion onnx cannot do is one clean line, nothing written
    rc, out, err = run("edit", dst, tmp_path / "down.onnx", "--opset", "9")
    clean_error(rc, err, "--opset 9")
    assert not (tmp_path / "down.onnx").exists()


def test_edit_errors(src, tmp_path):
    dst = tmp_path / "e.onnx"
    rc, _, err = run("edit", src, dst, "--rename", "conv9=x")
    clean_error(rc, err, "conv9")
    rc, _, err = run("edit", src, dst, "--rename", "c1=c2")
    clean_error(rc, err, "already exists")
    rc, _, err = run("edit", src, dst, "--output", "nope")
    clean_error(rc, err, "--output", "nope")
    rc, _, err = run("edit", src, dst, "--rename", "noequals")
    clean_error(rc, err, "OLD=NEW")
    assert not dst.exists()
