"""Resource limits: a model that declares a huge tensor is refused, with the number, before
anything is allocated (src/nnport/limits.py)."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from nnport import InputError
from nnport.limits import (DEFAULT_MAX_ELEMENTS, check_elements, check_node, check_proto,
                           max_elements)

from ._common import load_fuzz, run_bounded

TRILLION = "1,000,000,000,000"


def _declared(name, dims, elem=T.FLOAT, data=b"\0" * 16):
    """A tensor whose dims say one thing and whose data another (make_tensor would refuse)."""
    t = onnx.TensorProto()
    t.name, t.data_type = name, elem
    t.dims.extend(dims)
    t.raw_data = data
    return t


def _model(nodes, inits=(), inputs=(), opset=17):
    g = helper.make_graph(nodes, "g", list(inputs),
                          [helper.make_tensor_value_info("y", T.FLOAT, None)], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _i64(name, vals):
    return numpy_helper.from_array(np.array(vals, np.int64), name)


def huge_models() -> dict[str, onnx.ModelProto]:
    f32 = lambda n, v: numpy_helper.from_array(np.array(v, np.float32), n)  # noqa: E731
    then_g = helper.make_graph([helper.make_node("Identity", ["w"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", T.FLOAT, None)],
                               [_declared("w", [10**6, 10**6])])
    x4 = helper.make_tensor_value_info("x", T.FLOAT, [1, 1, 1000, 1000])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", T.FLOAT, None)])
    return {
        "initializer": _model([helper.make_node("Relu", ["w"], ["y"])],
                              [_declared("w", [10**6, 10**6])]),
        "constant_attr": _model([helper.make_node("Constant", [], ["y"],
                                                  value=_declared("cv", [10**4, 10**8]))]),
        "constant_of_shape": _model([helper.make_node("ConstantOfShape", ["s"], ["y"])],
                                    [_i64("s", [10**6, 10**6])]),
        "constant_of_shape_from_constant": _model([
            helper.make_node("Constant", [], ["s"], value_ints=[10**6, 10**6]),
            helper.make_node("ConstantOfShape", ["s"], ["y"])]),
        "expand": _model([helper.make_node("Expand", ["x", "s"], ["y"])],
                         [f32("x", [1.0]), _i64("s", [10**6, 10**6])]),
        "tile": _model([helper.make_node("Tile", ["x", "r"], ["y"])],
                       [f32("x", [[1.0, 2.0]]), _i64("r", [10**6, 5 * 10**5])]),
        "range": _model([helper.make_node("Range", ["a", "b", "c"], ["y"])],
                        [_i64("a", 0), _i64("b", 10**12), _i64("c", 1)]),
        "resize_scales": _model([helper.make_node("Resize", ["x", "", "sc"], ["y"])],
                                [f32("sc", [1, 1, 1000, 1000])], inputs=[x4], opset=13),
        "resize_sizes": _model([helper.make_node("Resize", ["x", "", "", "sz"], ["y"])],
                               [_i64("sz", [1, 1, 10**6, 10**6])], inputs=[x4], opset=13),
        "upsample_attr": _model([helper.make_node("Upsample", ["x"], ["y"],
                                                  scales=[1.0, 1.0, 1000.0, 1000.0])],
                                inputs=[x4], opset=7),
        "pad": _model([helper.make_node("Pad", ["x", "p"], ["y"])],
                      [_i64("p", [0, 0, 999000, 999000])],
                      inputs=[helper.make_tensor_value_info("x", T.FLOAT, [1000, 1000])]),
        "one_hot": _model([helper.make_node("OneHot", ["i", "d", "v"], ["y"])],
                          [_i64("d", [10**6]), f32("v", [0.0, 1.0])],
                          inputs=[helper.make_tensor_value_info("i", T.INT64, [1000, 1000])]),
        "random_normal": _model([helper.make_node("RandomNormal", [], ["y"],
                                                  shape=[10**6, 10**6])]),
        "subgraph_initializer": _model(
            [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
            inputs=[helper.make_tensor_value_info("c", T.BOOL, []),
                    helper.make_tensor_value_info("x", T.FLOAT, [2])]),
    }


@pytest.mark.parametrize("case", list(huge_models()))
def test_check_proto_refuses_huge_tensors_with_the_number(case):
    with pytest.raises(InputError) as info:
        check_proto(huge_models()[case], "m.onnx")
    msg = str(info.value)
    assert msg.startswith("m.onnx: ") and "\n" not in msg
    assert TRILLION in msg, msg
    assert "limit 2,147,483,648" in msg


def test_initializer_message_names_the_tensor():
    with pytest.raises(InputError, match=r"tensor 'w' declares 1,000,000,000,000 elements"):
        check_proto(huge_models()["initializer"])


def test_int64_overflow_is_refused_not_wrapped():
    # 2**62 * 8 wraps to 0 in int64 arithmetic (np.prod would say 0 elements)
    assert int(np.prod(np.array([2**62, 8], np.int64))) == 0
    m = _model([helper.make_node("Relu", ["w"], ["y"])], [_declared("w", [2**62, 8])])
    with pytest.raises(InputError, match=r"36,893,488,147,419,103,232 elements overflows int64"):
        check_proto(m, "m.onnx")
    m = _model([helper.make_node("ConstantOfShape", ["s"], ["y"])],
               [_i64("s", [2**40, 2**40, 2**40])])
    with pytest.raises(InputError, match="overflows int64"):
        check_proto(m)


def test_negative_dims_and_data_size_mismatch():
    with pytest.raises(InputError, match="negative dimension -3"):
        check_proto(_model([helper.make_node("Relu", ["w"], ["y"])], [_declared("w", [2, -3])]))
    with pytest.raises(InputError, match=r"declares 5 elements \(20 bytes\) but holds 120 bytes"):
        check_proto(_model([helper.make_node("Relu", ["w"], ["y"])],
                           [_declared("w", [5, 1], data=b"\0" * 120)]))


def test_non_utf8_names_are_refused():
    m = _model([helper.make_node("Relu", ["x"], ["y"])],
               inputs=[helper.make_tensor_value_info("x", T.FLOAT, [2])])
    data = m.SerializeToString().replace(b"Relu", b"R\xf3lu")
    with pytest.raises(InputError, match="not valid UTF-8"):
        check_proto(onnx.ModelProto.FromString(data))


def test_small_and_real_models_pass():
    for data in load_fuzz().seed_models():
        check_proto(onnx.ModelProto.FromString(data))
    check_proto(_model([helper.make_node("ConstantOfShape", ["s"], ["y"])],
                       [_i64("s", [1024, 1024, 64])]))  # 67M elements: a plausible weight
    check_proto(_model([helper.make_node("Range", ["a", "b", "c"], ["y"])],
                       [_i64("a", 10), _i64("b", 0), _i64("c", 1)]))  # empty range


def test_check_elements_and_env_override(monkeypatch):
    assert check_elements([3, 4], "t") == 12
    assert check_elements([], "scalar") == 1
    assert check_elements(["N", None, 5], "t") == 5  # symbolic dims count 1
    assert max_elements() == DEFAULT_MAX_ELEMENTS
    monkeypatch.setenv("NNPORT_MAX_ELEMENTS", "1_000")
    assert max_elements() == 1000
    with pytest.raises(InputError, match=r"tensor 'w' declares 1,001 elements \(limit 1,000"):
        check_elements([7, 11, 13], "tensor 'w'")
    monkeypatch.setenv("NNPORT_MAX_ELEMENTS", "lots")
    with pytest.raises(InputError, match="NNPORT_MAX_ELEMENTS"):
        max_elements()


def test_check_node_on_ir_after_folding():
    """The folder computes shapes from other constants: check_node sees the computed value."""
    shape = ir.Value(name="s", const_value=ir.tensor(np.array([10**6, 10**6], np.int64)))
    node = ir.Node("", "ConstantOfShape", [shape], num_outputs=1, name="cos")
    with pytest.raises(InputError, match=rf"node 'cos' \(ConstantOfShape\) would make {TRILLION}"):
        check_node(node)
    ok = ir.Value(name="s2", const_value=ir.tensor(np.array([4, 4], np.int64)))
    check_node(ir.Node("", "ConstantOfShape", [ok], num_outputs=1))
    x = ir.Value(name="x", const_value=ir.tensor(np.ones((1000, 1000), np.float32)))
    reps = ir.Value(name="r", const_value=ir.tensor(np.array([1000, 1000], np.int64)))
    with pytest.raises(InputError, match=TRILLION):
        check_node(ir.Node("", "Tile", [x, reps], num_outputs=1))
    dyn = ir.Value(name="d", shape=ir.Shape(["N", 3]), type=ir.TensorType(ir.DataType.FLOAT))
    check_node(ir.Node("", "Tile", [dyn, ir.Value(name="r2", const_value=ir.tensor(
        np.array([2, 2], np.int64)))], num_outputs=1))


# ---- the hookup: nnport's entry points must refuse these before allocating ------------------
# Run in a child with a 4 GiB address-space limit, so that today's behaviour (allocate, or
# fail somewhere deep) cannot take the machine down.

@pytest.mark.parametrize("case", ["initializer", "constant_of_shape", "expand", "tile", "range",
                                  "subgraph_initializer", "resize_scales", "pad"])
def test_entry_points_refuse_huge_tensors(case, tmp_path):
    src = tmp_path / f"{case}.onnx"
    onnx.save(huge_models()[case], src)
    for fn in ("inspect", "convert"):
        res = run_bounded(fn, src, tmp_path / "out.py")
        assert res["outcome"] == "nnport" and res["type"] == "InputError", res
        assert TRILLION in res["msg"] and str(src) in res["msg"], res
    assert not (tmp_path / "out.py").exists()


def test_folder_refuses_computed_huge_shape(tmp_path):
    """ConstantOfShape(Mul(s, k)): the shape only exists after folding the Mul."""
    m = _model([helper.make_node("Mul", ["s", "k"], ["s2"]),
                helper.make_node("ConstantOfShape", ["s2"], ["y"])],
               [_i64("s", [10**3, 10**3]), _i64("k", [10**3, 10**3])])
    check_proto(m)  # nothing to see before folding
    src = tmp_path / "computed.onnx"
    onnx.save(m, src)
    res = run_bounded("convert", src, tmp_path / "out.py")
    assert res["outcome"] == "nnport" and TRILLION in res["msg"], res


def test_resize_pad_bounds_are_not_false_alarms():
    """Plausible sizes pass: a 4x upscale of an image, symbolic batch, padding a few pixels."""
    x = helper.make_tensor_value_info("x", T.FLOAT, ["N", 3, 512, 512])
    check_proto(_model([helper.make_node("Resize", ["x", "", "sc"], ["y"])],
                       [numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32), "sc")],
                       inputs=[x], opset=13))
    check_proto(_model([helper.make_node("Pad", ["x", "p"], ["y"])],
                       [_i64("p", [0, 0, 3, 3, 0, 0, 3, 3])], inputs=[x]))
    # a symbolic dim counts 1: 1 x 3 x (1000 * 1000)^2 is refused even with the batch unknown
    with pytest.raises(InputError, match="would make 3,000,000,000,000 elements"):
        check_proto(_model([helper.make_node("Resize", ["x", "", "sc"], ["y"])],
                           [numpy_helper.from_array(np.array([1, 1, 1e6 / 512, 1e6 / 512],
                                                             np.float32), "sc")], inputs=[
                               helper.make_tensor_value_info("x", T.FLOAT, ["N", 3, 512, 512])],
                           opset=13))


def test_check_node_resize_from_folded_scales():
    x = ir.Value(name="x", shape=ir.Shape(["N", 1, 1000, 1000]),
                 type=ir.TensorType(ir.DataType.FLOAT))
    sc = ir.Value(name="sc", const_value=ir.tensor(np.array([1, 1, 1000, 1000], np.float32)))
    node = ir.Node("", "Resize", [x, None, sc], num_outputs=1, name="up")
    with pytest.raises(InputError, match=rf"node 'up' \(Resize\) would make {TRILLION}"):
        check_node(node)


def test_verify_refuses_a_huge_input_shape_before_allocating(tmp_path):
    m = _model([helper.make_node("Relu", ["x"], ["y"])],
               inputs=[helper.make_tensor_value_info("x", T.FLOAT, ["a", "b"])])
    import nnport

    with pytest.raises(InputError, match=rf"input 'x' declares {TRILLION} elements"):
        nnport.verify(m, m, input_shapes={"x": (10**6, 10**6)})
