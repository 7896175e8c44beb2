"""verify --locate names exactly the node whose weight or attribute was corrupted."""
import copy
import json

import onnx
import pytest
from onnx import numpy_helper

import nnport
from nnport.verify.locate import locate
from tools.cnn import cnn_model

from util import run_cli as run


def corrupt_weight(model, name, delta=1.0):
    m = copy.deepcopy(model)
    for t in m.graph.initializer:
        if t.name == name:
            arr = numpy_helper.to_array(t).copy()
            arr.reshape(-1)[3::11] += delta  # several entries: one may meet a zero input
            t.CopyFrom(numpy_helper.from_array(arr, name))
    return m


def corrupt_attr(model, node_name, attr, ints):
    m = copy.deepcopy(model)
    node = next(n for n in m.graph.node if n.name == node_name)
    a = next(a for a in node.attribute if a.name == attr)
    a.ints[:] = ints
    return m


@pytest.mark.parametrize("weight,node,op", [("w1", "conv1", "Conv"), ("w2", "conv2", "Conv"),
                                            ("bn_v", "bn1", "BatchNormalization"),
                                            ("fc_w", "fc", "Gemm")])
@pytest.mark.parametrize("chunk", [2, 64])
def test_onnx_weight_corruption_is_located(weight, node, op, chunk):
    a = cnn_model()
    res = locate(a, corrupt_weight(a, weight), chunk_size=chunk)
    assert not res.report.ok
    assert res.found and res.node == node and res.op == op, res.lines()
    w = next(i for i in res.inputs if i["name"] == weight)
    assert w["kind"] == "weight" and not w["ok"]
    # the node's tensor inputs still agree
    assert all(i["ok"] for i in res.inputs if i["kind"] != "weight" and "ok" in i)


def test_onnx_attribute_corruption_is_located():
    a = cnn_model()
    res = locate(a, corrupt_attr(a, "pool2", "kernel_shape", [1, 1]), chunk_size=3)
    assert res.found and res.node == "pool2" and res.op == "MaxPool"
    res = locate(a, corrupt_attr(a, "transpose_id", "perm", [0, 1, 3, 2]))
    assert res.found and res.node == "transpose_id"


def test_matching_models_locate_nothing():
    a = cnn_model()
    res = locate(a, copy.deepcopy(a))
    assert res.report.ok and not res.found
    res = locate(a, copy.deepcopy(a), scan_all=True, chunk_size=5)
    assert not res.found and res.compared == 20 and all(t.ok for t in res.trace)


@pytest.fixture()
def generated(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(cnn_model(), src)
    py = tmp_path / "out" / "m.py"
    py.parent.mkdir()
    assert nnport.convert(src, py).ok
    return src, py


def test_torch_safetensors_corruption_is_located_with_source_line(generated):
    from safetensors.numpy import load_file, save_file

    src, py = generated
    st = py.with_suffix(".safetensors")
    w = load_file(st)
    w["conv2.weight"].reshape(-1)[5] += 2.0
    save_file(w, st)
    res = locate(src, py, chunk_size=4)
    assert res.found and res.node == "conv2" and res.op == "Conv", res.lines()
    lines = py.read_text().splitlines()
    assert res.source["file"] == str(py)
    assert lines[res.source["line"] - 1].strip() == res.source["text"].strip()
    assert "self.conv2(" in res.source["text"]


def test_cli_locate_text_and_json(generated, tmp_path):
    src, _ = generated
    bad = tmp_path / "bad.onnx"
    onnx.save(corrupt_weight(cnn_model(), "w2"), bad)
    rc, out, err = run("verify", src, bad, "--locate")
    assert rc == 1, err
    assert "first diverging node 'conv2' (Conv)" in out and "w2 (weight)" in out
    rc, out, err = run("verify", src, bad, "--locate", "--json")
    assert rc == 1, err
    d = json.loads(out)
    assert d["match"] is False and d["locate"]["node"] == "conv2"
    assert d["locate"]["output"]["name"] == "c2"
    rc, out, err = run("verify", src, src, "--locate")
    assert rc == 0 and "nothing to locate" in out


def _mlp_with_linear(path):
    """MatMul + Add (fused into nn.Linear in model.py), then Relu, MatMul + Add."""
    import numpy as np
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 16), dtype=np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(16, dtype=np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((16, 4), dtype=np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(4, dtype=np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "b1"], ["h1"], name="add1"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="mm2"),
             helper.make_node("Add", ["m2", "b2"], ["y"], name="add2")]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [2, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_locate_in_generated_code_with_fused_linear(tmp_path):
    """model.py holds nn.Linear layers made from MatMul+Add: the recording module must load
    its weights, and the first diverging tensor is the fused node's output."""
    from safetensors.numpy import load_file, save_file

    src, py = tmp_path / "mlp.onnx", tmp_path / "out" / "mlp.py"
    _mlp_with_linear(src)
    py.parent.mkdir()
    assert nnport.convert(src, py).ok
    assert "nn.Linear(" in py.read_text()
    res = locate(src, py)
    assert res.report.ok and not res.found
    st = py.with_suffix(".safetensors")
    w = load_file(st)
    key = next(k for k, v in w.items() if v.shape == (4, 16))  # the second Linear's weight
    w[key][1, 3] += 5.0
    save_file(w, st)
    res = locate(src, py)
    assert res.found and res.node in ("mm2", "add2"), res.lines()
    assert res.output.name == "y"
    assert "h1" in [t.name for t in res.trace] and all(t.ok for t in res.trace[:-1])
    assert res.source["file"] == str(py) and "self." in res.source["text"]


def test_locate_reads_the_line_map_stored_with_the_weights(generated, monkeypatch):
    """The source line comes from the map convert stored in the .safetensors metadata, without
    generating the code again; once model.py is edited, the map is not trusted."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    import nnport.torch_emit.codegen as codegen

    src, py = generated
    st = py.with_suffix(".safetensors")
    with safe_open(str(st), framework="np") as f:
        assert "nnport.lines" in f.metadata()
    w = load_file(st)
    w["conv2.weight"].reshape(-1)[5] += 2.0
    with safe_open(str(st), framework="np") as f:
        meta = f.metadata()
    save_file(w, st, metadata=meta)  # the user's fix of a weight keeps the map

    class NoRegeneration(codegen.CodeGen):
        def generate(self):
            raise AssertionError("locate generated the code again")

    monkeypatch.setattr(codegen, "CodeGen", NoRegeneration)
    res = locate(src, py, chunk_size=4)
    assert res.found and res.node == "conv2", res.lines()
    lines = py.read_text().splitlines()
    assert res.source["file"] == str(py)
    assert "self.conv2(" in lines[res.source["line"] - 1] == res.source["text"]
    monkeypatch.undo()
    # an edited model.py: its lines moved, the stored map is stale and not used
    py.write_text("# my notes\n" + py.read_text())
    res2 = locate(src, py, chunk_size=4)
    assert res2.source["file"] == str(py) and res2.source["line"] == res.source["line"] + 1
    monkeypatch.setattr(codegen, "CodeGen", NoRegeneration)
    assert locate(src, py, chunk_size=4).source is None  # it had to generate the code again
