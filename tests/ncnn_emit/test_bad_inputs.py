"""Bad inputs: one line on stderr, exit 2, no .param/.bin left behind."""
from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("ncnn")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "nnport.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _model(path, nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def _assert_error(r, tmp_path, *words):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not list(tmp_path.glob("*.param")) and not list(tmp_path.glob("*.bin"))
    assert not list(tmp_path.glob(".*tmp"))


def test_unsupported_ops_all_listed(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [1])
    src = _model(tmp_path / "m.onnx", [
        helper.make_node("Hardmax", ["x"], ["d"], name="hm_node"),
        helper.make_node("Relu", ["d"], ["r"]),
        helper.make_node("TopK", ["r", "k"], ["y", "i"], name="topk_node"),
    ], [x, k], [y])
    r = _cli("convert", src, tmp_path / "m.param")
    _assert_error(r, tmp_path, "ncnn", "Hardmax", "hm_node", "TopK", "topk_node")


def _cropped(tmp_path, opset):
    """Relu then a crop of the last axis, written as that opset's Slice: attributes starts,
    ends and axes before opset 10, inputs from 10 on."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu_node")
    if opset < 10:
        nodes, inits = [relu, helper.make_node("Slice", ["r"], ["y"], name="crop_w", starts=[1],
                                               ends=[5], axes=[3])], []
    else:
        nodes = [relu, helper.make_node("Slice", ["r", "s", "e", "a"], ["y"], name="crop_w")]
        inits = [helper.make_tensor(n, TensorProto.INT64, [1], [v])
                 for n, v in (("s", 1), ("e", 5), ("a", 3))]
    return _model(tmp_path / f"slice{opset}.onnx", nodes, [x], [y], inits, opset=opset)


def test_old_opset_form_the_emitter_cannot_read_is_listed(tmp_path):
    """Slice before opset 10 takes starts/ends/axes as attributes, which the ncnn emitter
    does not read: the registry holds Slice from 10, so the pre-flight lists the opset-9 node
    (and only it), and convert stops there with one line, writing nothing.  The same crop as
    opset 10 passes the pre-flight."""
    import json

    src = _cropped(tmp_path, 9)
    r = _cli("inspect", "--target", "ncnn", "--json", src)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)["unsupported"]
    assert [(u["op_type"], u["opset"], u["node"]) for u in listed] == [("Slice", 9, "crop_w")]
    r = _cli("inspect", "--target", "ncnn", src)
    assert "cannot convert to ncnn: 1 node(s)" in r.stdout and "'crop_w'" in r.stdout, r.stdout
    r = _cli("convert", src, tmp_path / "m.param")
    _assert_error(r, tmp_path, "ncnn", "Slice", "opset 9", "crop_w")
    r = _cli("inspect", "--target", "ncnn", "--json", _cropped(tmp_path, 10))
    assert json.loads(r.stdout)["unsupported"] == [], r.stdout + r.stderr


def test_rank_too_high(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 4, 5, 6])
    src = _model(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    _assert_error(_cli("convert", src, tmp_path / "m.param"), tmp_path, "rank", "'x'")


def test_dynamic_dim_needs_input_shape(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    src = _model(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    _assert_error(_cli("convert", src, tmp_path / "m.param"), tmp_path, "--input-shape", "'x'")
    r = _cli("convert", src, tmp_path / "m.param", "--input-shape", "x=1,3,8,8")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.param").exists() and (tmp_path / "m.bin").exists()


def test_batch_other_than_one_of_rank_5(tmp_path):
    """A 5-D tensor with a batch of 2 is held as N*C ncnn channels: the Conv runs per sample,
    but an op that is not exact on that layout is refused by name."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1, 1], [0.5] * 12)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["c"], name="the_conv"),
             helper.make_node("Softmax", ["c"], ["y"], axis=1, name="the_softmax")]
    src = _model(tmp_path / "m.onnx", nodes, [x], [y], [w])
    r = _cli("convert", src, tmp_path / "m.param", "--input-shape", "x=2,3,4,8,8")
    _assert_error(r, tmp_path, "batch of 2", "the_softmax")


def test_batch_of_one_held_whole_converts(tmp_path):
    """A slice of a batch of 2 has a batch of 1 that ncnn holds whole: the convolution runs
    on its one sample (it used to be refused as "runs on a batch of 1; ncnn runs a batch of
    1")."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1], [0.5] * 12),
             helper.make_tensor("s", TensorProto.INT64, [1], [0]),
             helper.make_tensor("e", TensorProto.INT64, [1], [1]),
             helper.make_tensor("ax", TensorProto.INT64, [1], [0])]
    nodes = [helper.make_node("Slice", ["x", "s", "e", "ax"], ["u"]),
             helper.make_node("Conv", ["u", "w"], ["y"], name="the_conv")]
    src = _model(tmp_path / "m.onnx", nodes, [x], [y], inits)
    r = _cli("convert", src, tmp_path / "m.param")
    assert r.returncode == 0, r.stderr
    assert "MATCH" in r.stdout


def test_attribute_ncnn_cannot_express(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    src = _model(tmp_path / "m.onnx", [helper.make_node(
        "MaxPool", ["x"], ["y"], name="dilated", kernel_shape=[2, 2], dilations=[2, 2])],
        [x], [y])
    _assert_error(_cli("convert", src, tmp_path / "m.param"), tmp_path, "dilated", "MaxPool")


def test_fp16_flag_and_verify_command(tmp_path):
    x = helper.make_tensor_value_info("in put", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.01 * i for i in range(108)])
    g = helper.make_graph([helper.make_node("Conv", ["in put", "w"], ["y"], pads=[1, 1, 1, 1])],
                          "g", [x], [y], [w])
    src = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src)
    r = _cli("convert", src, tmp_path / "m.param", "--fp16")
    assert r.returncode == 0, r.stderr
    assert "MATCH" in r.stdout
    assert (tmp_path / "m.bin").stat().st_size == 4 + 108 * 2
    assert " in_put " in (tmp_path / "m.param").read_text()
    r = _cli("verify", src, tmp_path / "m.param", "--rtol", "1e-2", "--atol", "1e-2")
    assert r.returncode == 0, r.stdout + r.stderr
    # README's `verify model.onnx out/model.param` after `--fp16`: float16 weights are seen
    # in the .bin and get convert --fp16's tolerance (was a MISMATCH at the fp32 default)
    r = _cli("verify", src, tmp_path / "m.param", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"rtol": 0.01' in r.stdout
    r = _cli("convert", src, tmp_path / "m.param")  # float32 weights: the strict default again
    assert r.returncode == 0, r.stderr
    r = _cli("verify", src, tmp_path / "m.param", "--json")
    assert '"rtol": 0.0001' in r.stdout, r.stdout


def test_pytorch_sources_convert_through_onnx(tmp_path):
    """file.py:factory and TorchScript go to ncnn in one command: exported to ONNX (checked
    against the module), converted, run in ncnn against that ONNX."""
    import torch

    (tmp_path / "net.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),\n"
        "        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))\n")
    r = _cli("convert", f"{tmp_path / 'net.py'}:make", tmp_path / "a.param",
             "--input-shape", "input=1,3,16,16")
    assert r.returncode == 0, r.stderr
    assert "exported to ONNX first" in r.stdout + r.stderr and "MATCH" in r.stdout
    assert "\nConvolution " in (tmp_path / "a.param").read_text()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Sigmoid()).eval()
    torch.jit.script(net).save(str(tmp_path / "s.pt"))
    r = _cli("convert", tmp_path / "s.pt", tmp_path / "s.param", "--input-shape", "input=1,3,9,9")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.bin").exists()
    # no shape for the factory's input: one line naming the flag, nothing written
    bad = tmp_path / "bad"
    bad.mkdir()
    r = _cli("convert", f"{tmp_path / 'net.py'}:make", bad / "b.param")
    _assert_error(r, bad, "--input-shape")
