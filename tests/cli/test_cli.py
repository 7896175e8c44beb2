"""The command line, run as a user runs it: a subprocess, real files, exit codes, one-line errors."""
import json
import os

import numpy as np
import onnx
import pytest

from models_small import add_relu_model, unsupported_ops_model
from util import assert_clean_error, run_cli as run


@pytest.fixture()
def model_path(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(add_relu_model(), p)
    return p


def test_convert_writes_py_and_safetensors_and_verifies(model_path, tmp_path):
    rc, out, err = run("convert", model_path, tmp_path / "out.py")
    assert rc == 0, err
    assert (tmp_path / "out.py").is_file() and (tmp_path / "out.safetensors").is_file()
    assert "MATCH" in out and "max_abs=" in out
    # no temporary files left behind
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_verify_json_and_exit_codes(model_path, tmp_path):
    assert run("convert", model_path, tmp_path / "out.py", "--no-verify")[0] == 0
    rc, out, err = run("verify", model_path, tmp_path / "out.py", "--json",
                       "--input-shape", "x=3,4", "--input-shape", "y=3,4", "--seed", "5")
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["match"] is True and rep["seed"] == 5
    assert rep["inputs"]["x"]["shape"] == [3, 4]
    assert rep["outputs"][0]["max_abs_err"] <= 1e-6
    # corrupt the weights: verification must report a mismatch with exit code 1
    from safetensors.numpy import load_file, save_file

    st = tmp_path / "out.safetensors"
    w = load_file(st)
    key = next(iter(w))
    w[key] = w[key] + 1.0
    save_file(w, st)
    rc, out, err = run("verify", model_path, tmp_path / "out.py")
    assert rc == 1, (out, err)
    assert "MISMATCH" in out


def test_verify_with_npy_inputs(model_path, tmp_path):
    run("convert", model_path, tmp_path / "out.py", "--no-verify")
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    rc, out, err = run("verify", model_path, tmp_path / "out.py", "--input",
                       f"x={tmp_path / 'x.npy'}", "--input-shape", "y=2,4", "--json")
    assert rc == 0, err
    assert json.loads(out)["inputs"]["x"]["shape"] == [2, 4]


def test_inspect_lists_every_unsupported_node(tmp_path):
    p = tmp_path / "bad.onnx"
    onnx.save(unsupported_ops_model(), p)
    rc, out, err = run("inspect", p, "--json")
    assert rc == 0, err
    info = json.loads(out)
    assert sorted(u["node"] for u in info["unsupported"]) == ["fancy1", "fancy2", "other"]
    assert info["ops"]["com.example::FancyOp"] == 2
    rc, out, err = run("convert", p, tmp_path / "bad.py")
    assert_clean_error(rc, out, err, "3 node(s)", "FancyOp", "'fancy1'", "'fancy2'", "OtherOp")
    assert not (tmp_path / "bad.py").exists()


def test_convert_creates_missing_output_folders(model_path, tmp_path):
    """README's examples write into out/: missing folders are created, for every target."""
    rc, out, err = run("convert", model_path, "out/deeper/model.py", cwd=tmp_path)
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out" / "deeper").iterdir()) == [
        "model.py", "model.safetensors"]
    rc, out, err = run("convert", model_path, tmp_path / "o2" / "m.onnx", "--no-verify")
    assert rc == 0, err
    assert (tmp_path / "o2" / "m.onnx").is_file()
    rc, out, err = run("verify", model_path, tmp_path / "out" / "deeper" / "model.py",
                       "--report", tmp_path / "o3" / "report.html", "--input-shape", "x=2,4",
                       "--input-shape", "y=2,4")
    assert rc == 0, err
    assert (tmp_path / "o3" / "report.html").is_file()


def test_failed_convert_leaves_no_folder(tmp_path):
    """A failed run creates nothing: neither output files nor the folders it would have made."""
    bad = tmp_path / "bad.onnx"
    onnx.save(unsupported_ops_model(), bad)
    rc, out, err = run("convert", bad, tmp_path / "new" / "sub" / "o.py")
    assert_clean_error(rc, out, err, "FancyOp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_failed_write_removes_the_folders_it_made(tmp_path, monkeypatch):
    """A write that fails half-way (disk full, say) removes its temporary files and the folders
    this run created, and leaves folders that existed alone."""
    import nnport
    import nnport.torch_emit as te

    def full_disk(state, path, *metadata):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(te, "write_safetensors", full_disk)
    (tmp_path / "keep").mkdir()
    with pytest.raises(OSError):
        nnport.convert(add_relu_model(), tmp_path / "keep" / "a" / "b" / "m.py", verify=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep"]
    # a folder that already held something is never removed
    (tmp_path / "keep" / "a").mkdir()
    (tmp_path / "keep" / "a" / "other.txt").write_text("x")
    with pytest.raises(OSError):
        nnport.convert(add_relu_model(), tmp_path / "keep" / "a" / "m.py", verify=False)
    assert sorted(p.name for p in (tmp_path / "keep" / "a").iterdir()) == ["other.txt"]
    # a folder made by an earlier successful run is the user's: a later failure keeps it
    monkeypatch.undo()
    nnport.convert(add_relu_model(), tmp_path / "ok" / "m.py", verify=False)
    for p in (tmp_path / "ok").iterdir():
        p.unlink()
    monkeypatch.setattr(te, "write_safetensors", full_disk)
    with pytest.raises(OSError):
        nnport.convert(add_relu_model(), tmp_path / "new" / "m.py", verify=False)
    assert (tmp_path / "ok").is_dir() and not (tmp_path / "new").exists()


@pytest.mark.parametrize("rows", [64, 131072])  # a 2 MB weight: the file is read lean
def test_inspect_reports_inconsistent_shapes_without_traceback(tmp_path, rows):
    """Declared shapes that disagree with what the graph implies: one line per problem, the
    rest of the model still described, no traceback (onnx_ir logs shape-inference failures
    with one)."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.ones((rows, 4), np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["s"], name="add"),
         helper.make_node("Relu", ["s"], ["z"], name="relu")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [rows, 4])],
        [helper.make_tensor_value_info("z", T.FLOAT, [10000000, 4])], [w])
    g.value_info.append(helper.make_tensor_value_info("s", T.FLOAT, [10000000, 4]))
    p = tmp_path / "bad_shapes.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    rc, out, err = run("inspect", p)
    assert rc == 0 and "Traceback" not in out + err and not err.strip(), err
    assert "problems: 1" in out
    assert ("  node 'add' (Add): Inferred shape and existing shape differ in dimension 0: "
            f"({rows}) vs (10000000)") in out.splitlines()
    assert "Relu: 1" in out and "every node converts" in out
    rc, out, err = run("inspect", p, "--json")
    assert rc == 0, err
    assert len(json.loads(out)["problems"]) == 1
    # a consistent model has none
    onnx.save(add_relu_model(), p)
    rc, out, err = run("inspect", p, "--json")
    assert rc == 0 and json.loads(out)["problems"] == []


def test_inspect_model_that_fails_after_normalizing(tmp_path):
    """A Tile without its repeats passes onnx's checks on the raw graph but fails shape
    inference once normalized: reported as a problem, on stdout, no traceback on stderr."""
    from onnx import TensorProto as T
    from onnx import helper

    g = helper.make_graph(
        [helper.make_node("Tile", ["x", ""], ["t"], name="tile"),
         helper.make_node("MatMul", ["x", "t"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", T.FLOAT, None)])
    p = tmp_path / "tile.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    rc, out, err = run("inspect", p)
    assert rc == 0 and not err.strip(), err
    assert "node 'tile' (Tile): Input 1 is out of bounds" in out
    rc, out, err = run("convert", p, tmp_path / "t.py")
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err


def test_inspect_text(model_path):
    rc, out, err = run("inspect", model_path)
    assert rc == 0
    assert "x: float [batch, 4]" in out and "Relu: 1" in out and "every node converts" in out


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "garbage", "truncated", "text"])
def test_bad_model_files(case, model_path, tmp_path):
    bad = tmp_path / "bad.onnx"
    if case == "missing":
        bad = tmp_path / "nope.onnx"
    elif case == "folder":
        bad = tmp_path
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "garbage":
        bad.write_bytes(os.urandom(3000))
    elif case == "truncated":
        data = model_path.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif case == "text":
        bad.write_text("this is not a model\n")
    for cmd in (["convert", bad, tmp_path / "o.py"], ["inspect", bad],
                ["verify", bad, tmp_path / "o.py"]):
        rc, out, err = run(*cmd)
        assert_clean_error(rc, out, err, str(bad) if case != "folder" else "folder")
    assert not (tmp_path / "o.py").exists() and not (tmp_path / "o.safetensors").exists()


def test_missing_external_data(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    model = add_relu_model()
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, tmp_path / "ext.onnx")
    assert (tmp_path / "weights.bin").exists()
    rc, out, err = run("convert", tmp_path / "ext.onnx", tmp_path / "ok.py")
    assert rc == 0, err
    (tmp_path / "weights.bin").unlink()
    rc, out, err = run("convert", tmp_path / "ext.onnx", tmp_path / "o.py")
    assert_clean_error(rc, out, err, "weights.bin", "not found")


def test_external_data_outside_folder_is_refused(tmp_path):
    model = add_relu_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "escape.bin").write_bytes(b"\0" * 64)
    for location in ("../escape.bin", str(tmp_path / "escape.bin")):
        del tensor.external_data[:]
        tensor.external_data.add(key="location", value=location)
        (sub / "ext.onnx").write_bytes(model.SerializeToString())
        rc, out, err = run("inspect", sub / "ext.onnx")
        assert_clean_error(rc, out, err, "outside the model's folder")
    # a symlink inside the folder that points out of it is refused too
    (sub / "link.bin").symlink_to(tmp_path / "escape.bin")
    del tensor.external_data[:]
    tensor.external_data.add(key="location", value="link.bin")
    (sub / "ext.onnx").write_bytes(model.SerializeToString())
    rc, out, err = run("convert", sub / "ext.onnx", sub / "o.py")
    assert_clean_error(rc, out, err, "outside the model's folder")


def test_bad_flags_and_paths(model_path, tmp_path):
    (tmp_path / "afile").write_text("")
    rc, out, err = run("convert", model_path, tmp_path / "afile" / "sub" / "o.py")
    assert_clean_error(rc, out, err, "is not a folder", "afile")
    rc, out, err = run("convert", model_path, tmp_path / "o.py", "--input-shape", "x=1,a")
    assert_clean_error(rc, out, err, "--input-shape", "'a'")
    rc, out, err = run("convert", model_path, tmp_path / "o.py", "--input-shape", "z=1,4")
    assert_clean_error(rc, out, err, "no input 'z'")
    rc, out, err = run("convert", model_path, tmp_path / "o.py", "--input-shape", "x=1,5")
    assert_clean_error(rc, out, err, "static shape")
    rc, out, err = run("convert", model_path, tmp_path / "o.py", "--input-shape", "x=1,4,4")
    assert_clean_error(rc, out, err, "rank 2")
    rc, out, err = run("convert", model_path, tmp_path / "o.txt")
    assert_clean_error(rc, out, err, "unknown output type")
    rc, out, err = run("convert", model_path)
    assert_clean_error(rc, out, err, "dst")
    rc, out, err = run("frobnicate")
    assert_clean_error(rc, out, err, "frobnicate")
    assert not list(tmp_path.glob("o.*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(model_path, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    rc, out, err = run("convert", model_path, ro / "o.py")
    assert_clean_error(rc, out, err, "not writable")


def test_shape_that_does_not_fit_the_model(tmp_path):
    """Inputs the model cannot take: a runtime error becomes one line and exit 2."""
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n"]),
                           helper.make_tensor_value_info("b", TensorProto.FLOAT, ["m"])],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)])
    p = tmp_path / "g.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    rc, out, err = run("convert", p, tmp_path / "o.py", "--input-shape", "a=3",
                       "--input-shape", "b=5")
    assert_clean_error(rc, out, err, "onnxruntime")
    assert not (tmp_path / "o.py").exists()


@pytest.mark.parametrize("suffix", [".py", ".pt", ".param"])
@pytest.mark.parametrize("shape", ["q=1,4", "x=1,2,3"])
def test_wrong_input_shape_writes_nothing(tmp_path, suffix, shape):
    """A --input-shape naming no input, or of the wrong rank, is one line and exit 2 before any
    file is written (the ncnn target wrote .param/.bin, then failed verifying)."""
    p = tmp_path / "m.onnx"
    onnx.save(add_relu_model(), p)
    rc, out, err = run("convert", p, tmp_path / "out" / f"m{suffix}", "--input-shape", shape)
    assert_clean_error(rc, out, err)
    assert "--input-shape" in err
    assert not (tmp_path / "out").exists()
