"""passes/normalize/fold_scale.py: a constant per-feature Mul after MatMul(+Add) / Gemm / Conv (through
Transposes) goes into the weights; results still match onnxruntime on the original model."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnport
from nnport.convert import prepare
from nnport.io import SharedExternalTensor, load_model
from nnport.passes.normalize.fold_scale import fold_scale
from util import assert_matches_ort, ort_run

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(v, n) for n, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return m


def _rng(seed=0):
    return np.random.default_rng(seed)


def _fold(m: onnx.ModelProto) -> tuple[int, onnx.ModelProto]:
    """Run only the pass on a copy; returns (Muls folded, folded proto): the pass removes every
    Mul it folds, and says whether it changed the model."""
    model = ir.from_proto(m)
    muls = _ops(model).count("Mul")
    res = fold_scale(model)
    assert res.model is model
    n = muls - _ops(model).count("Mul")
    assert res.modified == (n > 0)
    return n, ir.to_proto(model)


def _ops(model) -> list[str]:
    nodes = model.graph.node if isinstance(model, onnx.ModelProto) else model.graph
    return [n.op_type for n in nodes]


def _check(m: onnx.ModelProto, feeds: dict, expect: int, rtol=1e-5, atol=1e-6):
    """The pass folds ``expect`` Muls; the folded model (in onnxruntime) and nnport's torch
    module both match onnxruntime on the original."""
    n, folded = _fold(m)
    assert n == expect
    ref = ort_run(m, feeds)
    got = ort_run(folded, feeds)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol)
    assert_matches_ort(m, feeds)
    assert _ops(prepare(m)).count("Mul") == _ops(m).count("Mul") - expect
    return folded


def _layer_scale(dtype=np.float32, gamma=None, gamma_shape=(1, 16, 1, 1), residual=True):
    """ConvNeXt's block tail: Linear on NHWC -> permute to NCHW -> * gamma -> + shortcut."""
    r = _rng()
    t = F16 if dtype == np.float16 else F32
    gamma = (r.uniform(0.2, 2.0, size=gamma_shape) if gamma is None else gamma).astype(dtype)
    inits = {"fc2.weight": r.standard_normal((8, 16)).astype(dtype) * dtype(0.3),
             "fc2.bias": r.standard_normal(16).astype(dtype), "gamma": gamma}
    nodes = [helper.make_node("MatMul", ["x", "fc2.weight"], ["mm"]),
             helper.make_node("Add", ["fc2.bias", "mm"], ["lin"]),
             helper.make_node("Transpose", ["lin"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Mul", ["t", "gamma"], ["scaled"])]
    inputs = [("x", t, [1, 5, 6, 8])]
    if residual:
        nodes.append(helper.make_node("Add", ["scaled", "shortcut"], ["y"]))
        inputs.append(("shortcut", t, [1, 16, 5, 6]))
    out = "y" if residual else "scaled"
    m = _model(nodes, inputs, [(out, t, None)], inits)
    feeds = {"x": r.standard_normal((1, 5, 6, 8)).astype(dtype)}
    if residual:
        feeds["shortcut"] = r.standard_normal((1, 16, 5, 6)).astype(dtype)
    return m, feeds


def test_layer_scale_after_linear_and_permute_folds():
    m, feeds = _layer_scale()
    folded = _check(m, feeds, 1)
    assert _ops(folded) == ["MatMul", "Add", "Transpose", "Add"]
    # the folded weights are new tensors; the old ones are no longer used
    names = {i for n in folded.graph.node for i in n.input}
    assert "fc2.weight" not in names and "fc2_scaled.weight" in names
    assert "gamma" not in names


def test_layer_scale_renames_changed_values_and_keeps_the_output_name():
    m, feeds = _layer_scale(residual=False)
    n, folded = _fold(m)
    assert n == 1
    assert [o.name for o in folded.graph.output] == ["scaled"]
    outs = {o for node in folded.graph.node for o in node.output}
    # 'mm' and 'lin' now hold scaled data: their names must not collide with the original's
    assert not outs & {"mm", "lin", "t"}
    np.testing.assert_allclose(ort_run(folded, feeds)[0], ort_run(m, feeds)[0], rtol=1e-5,
                               atol=1e-6)


def test_scalar_scale_and_operand_order():
    r = _rng(1)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32),
             "b": r.standard_normal((1, 4)).astype(np.float32),
             "s": np.array(0.37, np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Add", ["mm", "b"], ["lin"]),
                helper.make_node("Mul", ["s", "lin"], ["y"])],
               [("x", F32, [3, 2, 8])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal((3, 2, 8)).astype(np.float32)}, 1)


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (6,), (1, 6), (3, 1), ()])
def test_gemm(trans_b, c_shape):
    r = _rng(2)
    w = r.standard_normal((6, 5) if trans_b else (5, 6)).astype(np.float32)
    inits = {"w": w, "s": r.uniform(0.5, 2, (6,)).astype(np.float32)}
    ins = ["x", "w"]
    if c_shape is not None:
        inits["c"] = np.asarray(r.standard_normal(c_shape), np.float32)
        ins.append("c")
    m = _model([helper.make_node("Gemm", ins, ["g"], transB=trans_b, alpha=0.5, beta=2.0),
                helper.make_node("Mul", ["g", "s"], ["y"])],
               [("x", F32, [3, 5])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal((3, 5)).astype(np.float32)}, 1)


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_channel_scale(group, bias):
    r = _rng(3)
    inits = {"w": r.standard_normal((8, 4 // group, 3, 3)).astype(np.float32),
             "s": r.uniform(0.5, 2, (8, 1, 1)).astype(np.float32)}
    ins = ["x", "w"]
    if bias:
        inits["b"] = r.standard_normal(8).astype(np.float32)
        ins.append("b")
    m = _model([helper.make_node("Conv", ins, ["c"], group=group, pads=[1, 1, 1, 1]),
                helper.make_node("Mul", ["c", "s"], ["y"])],
               [("x", F32, [1, 4, 7, 7])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal((1, 4, 7, 7)).astype(np.float32)}, 1)


def test_float16_folds_and_matches():
    m, feeds = _layer_scale(np.float16)
    n, folded = _fold(m)
    assert n == 1
    init = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    w = init["fc2_scaled.weight"]
    assert w.dtype == np.float16
    # rounded once from the exact product (float32 holds a float16 product exactly)
    orig = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    exact = orig["fc2.weight"].astype(np.float32) * orig["gamma"].reshape(-1).astype(np.float32)
    np.testing.assert_array_equal(w, exact.astype(np.float16))
    np.testing.assert_allclose(ort_run(folded, feeds)[0].astype(np.float32),
                               ort_run(m, feeds)[0].astype(np.float32), rtol=1e-2, atol=1e-2)
    assert_matches_ort(m, feeds, rtol=1e-2, atol=1e-2)


def test_float16_tiny_scale_is_not_folded():
    # a 1e-6 layer-scale (timm's init) would flush float16 weights to zero / subnormals
    m, feeds = _layer_scale(np.float16, gamma=np.full((1, 16, 1, 1), 1e-6))
    n, folded = _fold(m)
    assert n == 0 and "Mul" in _ops(folded)


def test_bfloat16_weights_round_once():
    import ml_dtypes

    r = _rng(4)
    w = r.standard_normal((8, 4)).astype(ml_dtypes.bfloat16)
    s = r.uniform(0.5, 2, (4,)).astype(ml_dtypes.bfloat16)
    model = ir.Model(ir.Graph([], [], nodes=[], name="g", opset_imports={"": 17}),
                     ir_version=9)
    g = model.graph
    x = ir.Value(name="x", shape=ir.Shape([2, 8]), type=ir.TensorType(ir.DataType.BFLOAT16))
    g.inputs.append(x)
    consts = {}
    for name, arr in (("w", w), ("s", s)):
        v = ir.Value(name=name, const_value=ir.tensor(arr, name=name))
        v.shape, v.type = ir.Shape(arr.shape), ir.TensorType(ir.DataType.BFLOAT16)
        g.register_initializer(v)
        consts[name] = v
    mm = ir.Node("", "MatMul", [x, consts["w"]])
    mul = ir.Node("", "Mul", [mm.outputs[0], consts["s"]])
    g.append(mm)
    g.append(mul)
    g.outputs.append(mul.outputs[0])
    mul.outputs[0].name = "y"
    assert fold_scale(model).modified
    new_w = mm.inputs[1].const_value.numpy()
    expect = (w.astype(np.float32) * s.astype(np.float32)).astype(ml_dtypes.bfloat16)
    assert new_w.dtype == w.dtype
    np.testing.assert_array_equal(new_w.astype(np.float32), expect.astype(np.float32))
    assert g.outputs[0] is mm.outputs[0] and g.outputs[0].name == "y"


# ----- the pattern must not fire ---------------------------------------------------------------
def test_not_folded_when_the_linear_output_has_another_consumer():
    r = _rng(5)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32),
             "b": r.standard_normal(4).astype(np.float32),
             "s": r.uniform(0.5, 2, (4,)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Add", ["mm", "b"], ["lin"]),
                helper.make_node("Mul", ["lin", "s"], ["y"]),
                helper.make_node("Relu", ["mm"], ["z"])],
               [("x", F32, [2, 8])], [("y", F32, None), ("z", F32, None)], inits)
    _check(m, {"x": r.standard_normal((2, 8)).astype(np.float32)}, 0)


def test_not_folded_when_an_intermediate_is_a_graph_output():
    m, feeds = _layer_scale(residual=False)
    m.graph.output.append(helper.make_tensor_value_info("lin", F32, None))
    _check(m, feeds, 0)


def test_not_folded_when_the_scale_is_not_constant():
    r = _rng(6)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Mul", ["mm", "s"], ["y"])],
               [("x", F32, [2, 8]), ("s", F32, [4])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal((2, 8)).astype(np.float32),
               "s": r.uniform(0.5, 2, (4,)).astype(np.float32)}, 0)


def test_not_folded_when_the_weight_is_not_constant():
    r = _rng(7)
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Mul", ["mm", "s"], ["y"])],
               [("x", F32, [2, 8]), ("w", F32, [8, 4])], [("y", F32, None)],
               {"s": r.uniform(0.5, 2, (4,)).astype(np.float32)})
    _check(m, {"x": r.standard_normal((2, 8)).astype(np.float32),
               "w": r.standard_normal((8, 4)).astype(np.float32)}, 0)


@pytest.mark.parametrize("shape", [(1, 1, 1, 6),   # along W after the permute, not channels
                                   (1, 1, 5, 1),   # along H
                                   (1, 16, 5, 1)])  # channels and H
def test_not_folded_when_the_scale_runs_along_another_axis(shape):
    m, feeds = _layer_scale(gamma_shape=shape)
    _check(m, feeds, 0)


def test_not_folded_when_the_scale_runs_along_the_rows():
    r = _rng(8)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32),
             "s": r.uniform(0.5, 2, (3, 1)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Mul", ["mm", "s"], ["y"])],
               [("x", F32, [3, 8])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal((3, 8)).astype(np.float32)}, 0)


def test_not_folded_when_the_mul_would_add_axes():
    r = _rng(9)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32),
             "s": r.uniform(0.5, 2, (1, 1, 4)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Mul", ["mm", "s"], ["y"])],
               [("x", F32, [3, 8])], [("y", F32, None)], inits)
    out = _check(m, {"x": r.standard_normal((3, 8)).astype(np.float32)}, 0)
    assert "Mul" in _ops(out)


def test_not_folded_when_a_vector_times_matrix_would_gain_an_axis():
    r = _rng(13)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32),
             "s": r.uniform(0.5, 2, (1, 4)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Mul", ["mm", "s"], ["y"])],
               [("x", F32, [8])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal(8).astype(np.float32)}, 0)


def test_not_folded_through_a_nonlinear_op():
    r = _rng(10)
    inits = {"w": r.standard_normal((8, 4)).astype(np.float32),
             "s": r.uniform(0.5, 2, (4,)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w"], ["mm"]),
                helper.make_node("Relu", ["mm"], ["r"]),
                helper.make_node("Mul", ["r", "s"], ["y"])],
               [("x", F32, [3, 8])], [("y", F32, None)], inits)
    _check(m, {"x": r.standard_normal((3, 8)).astype(np.float32)}, 0)


# ----- lazily loaded weights ---------------------------------------------------------------------
def test_reads_only_the_weights_it_folds(tmp_path, monkeypatch):
    """Two Linears on a model file loaded lazily: only the folded one's tensors are read."""
    r = _rng(11)
    inits = {"w1": r.standard_normal((64, 64)).astype(np.float32),
             "b1": r.standard_normal(64).astype(np.float32),
             "w2": r.standard_normal((64, 64)).astype(np.float32),
             "b2": r.standard_normal(64).astype(np.float32),
             "s": r.uniform(0.5, 2, (64,)).astype(np.float32)}
    m = _model([helper.make_node("MatMul", ["x", "w1"], ["mm1"]),
                helper.make_node("Add", ["mm1", "b1"], ["l1"]),
                helper.make_node("Mul", ["l1", "s"], ["y1"]),
                helper.make_node("MatMul", ["y1", "w2"], ["mm2"]),
                helper.make_node("Add", ["mm2", "b2"], ["y"])],
               [("x", F32, [2, 64])], [("y", F32, None)], inits)
    path = tmp_path / "m.onnx"
    on_disk = onnx.ModelProto()
    on_disk.CopyFrom(m)  # save_model moves the tensors of the proto it saves to the file
    onnx.save_model(on_disk, str(path), save_as_external_data=True, location="m.data",
                    size_threshold=0)
    model = load_model(path, lazy=True)
    assert isinstance(model.graph.initializers["w2"].const_value, ir.ExternalTensor)
    read = []

    def spy(real):
        def f(self):
            read.append(self.name)
            return real(self)
        return f

    monkeypatch.setattr(ir.ExternalTensor, "numpy", spy(ir.ExternalTensor.numpy))
    # a folded weight is read on its own (not through a mapping of the file)
    monkeypatch.setattr(SharedExternalTensor, "read", spy(SharedExternalTensor.read))
    assert fold_scale(model).modified
    monkeypatch.undo()
    assert set(read) <= {"w1", "b1", "s"} and "w1" in read
    feeds = {"x": r.standard_normal((2, 64)).astype(np.float32)}
    assert_matches_ort(m, feeds)
    module = nnport.to_torch(str(path))
    import torch

    with torch.no_grad():
        got = module(torch.from_numpy(feeds["x"])).numpy()
    np.testing.assert_allclose(got, ort_run(m, feeds)[0], rtol=1e-5, atol=1e-5)


def test_locate_does_not_compare_the_rescaled_tensors(tmp_path):
    """verify --locate matches tensors by name: the Conv's output (now scaled) is renamed, the
    Add's output takes over the Mul's name (it now holds that value), and nothing diverges."""
    from nnport.verify.locate import locate

    r = _rng(12)
    inits = {"w": r.standard_normal((8, 4, 3, 3)).astype(np.float32),
             "b": r.standard_normal((8, 1, 1)).astype(np.float32),
             "s": r.uniform(0.5, 2, (1, 8, 1, 1)).astype(np.float32)}
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                helper.make_node("Add", ["c", "b"], ["a"]),
                helper.make_node("Mul", ["a", "s"], ["m"]),
                helper.make_node("Relu", ["m"], ["y"])],
               [("x", F32, [1, 4, 7, 7])], [("y", F32, None)], inits)
    src, py = tmp_path / "m.onnx", tmp_path / "m.py"
    onnx.save(m, str(src))
    nnport.convert(str(src), str(py), verify=False)
    assert "Mul" not in _ops(prepare(m))
    res = locate(str(src), str(py), scan_all=True)
    assert not res.found
    compared = {t.name: t for t in res.trace}
    assert set(compared) == {"m", "y"} and all(t.ok for t in compared.values())
