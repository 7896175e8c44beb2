"""The second folding round of normalize(): once shapes are inferred, what hangs off a Shape of
static dims is constant.  Exported attention computes its scale from the head size at run time
and Swin pads to a window multiple computed from the input size; both must fold, so that the
generated code has neither, and still compute what onnxruntime computes."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import nnport
from nnport.convert import generate_torch, prepare


def _i64(name, vals):
    return numpy_helper.from_array(np.array(vals, np.int64), name)


def _attention(seq="T") -> onnx.ModelProto:
    """q, k, v (1, 2, T, 8); the scale as torch.onnx exports it: sqrt(1/sqrt(head_dim))
    multiplied into q and into k transposed, head_dim read with Shape at run time."""
    f = helper.make_node
    nodes = [
        f("Shape", ["q"], ["qs"]),
        f("Slice", ["qs", "m1", "big"], ["hd"]),
        f("Cast", ["hd"], ["hdf"], to=TensorProto.FLOAT),
        f("Sqrt", ["hdf"], ["sq"]),
        f("Div", ["one", "sq"], ["inv"]),
        f("Sqrt", ["inv"], ["s"]),
        f("Mul", ["q", "s"], ["qs2"]),
        f("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        f("Mul", ["kt", "s"], ["kts"]),
        f("MatMul", ["qs2", "kts"], ["sc"]),
        f("Softmax", ["sc"], ["p"], axis=-1),
        f("MatMul", ["p", "v"], ["y"]),
    ]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, seq, 8]) for n in "qkv"]
    g = helper.make_graph(nodes, "attn", ins,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [_i64("m1", [-1]), _i64("big", [2**62]),
                           numpy_helper.from_array(np.array([1.0], np.float32), "one")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _window_pad(h="H", w="W") -> onnx.ModelProto:
    """x (1, H, W, 4) padded at the end of H and W to a multiple of 7, as Swin does:
    pad = (7 - H % 7) % 7, built from Shape at run time; then Relu."""
    f = helper.make_node
    nodes = [f("Shape", ["x"], ["xs"])]
    pads = []
    for ax in (1, 2):
        nodes += [f("Gather", ["xs", f"a{ax}"], [f"d{ax}"], axis=0),
                  f("Mod", [f"d{ax}", "seven"], [f"r{ax}"]),
                  f("Sub", ["seven", f"r{ax}"], [f"t{ax}"]),
                  f("Mod", [f"t{ax}", "seven"], [f"p{ax}"])]
        pads.append(f"p{ax}")
    # pads: [0, 0, 0, 0, 0, pH, pW, 0]
    nodes += [f("Concat", ["z3", "z1", "z1", pads[0], pads[1], "z1"], ["pads"], axis=0),
              f("Pad", ["x", "pads"], ["xp"], mode="constant"),
              f("Relu", ["xp"], ["y"])]
    inits = [_i64("a1", [1]), _i64("a2", [2]), _i64("seven", [7]), _i64("z1", [0]),
             _i64("z3", [0, 0, 0])]
    g = helper.make_graph(nodes, "pad", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, h, w, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _static(model: onnx.ModelProto, dims: dict) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:
        for d in inp.type.tensor_type.shape.dim:
            if d.dim_param in dims:
                d.dim_value = dims[d.dim_param]
    return m


def _check(model: onnx.ModelProto, feeds: dict) -> None:
    module = nnport.to_torch(model)
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    with torch.no_grad():
        got = module(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _qkv(t: int) -> dict:
    rng = np.random.default_rng(t)
    return {n: rng.standard_normal((1, 2, t, 8)).astype(np.float32) for n in "qkv"}


@pytest.mark.parametrize("seq", ["T", 5])
def test_exported_attention_scale_folds_into_sdpa(seq):
    """The head size is static even when the sequence is not: no sqrt at run time, one SDPA
    call, whose scale is SDPA's default."""
    model = _attention(seq)
    source, _ = generate_torch(model)
    assert "torch.sqrt" not in source and "Shape" not in source
    assert source.count("F.scaled_dot_product_attention(") == 1
    # sqrt(1/sqrt(8))**2 = 1/sqrt(8): the default for 8-wide heads, so no scale= is printed
    assert "scale=" not in source, source
    for t in ([5] if seq == 5 else [5, 9]):
        _check(model, _qkv(t))


def test_static_window_padding_folds_away():
    model = _static(_window_pad(), {"H": 10, "W": 14})  # pads 4 and 0
    ops = [n.op_type for n in prepare(model).graph]
    assert ops == ["Pad", "Relu"], ops  # Shape/Gather/Mod/Concat gone, the pads constant
    x = np.random.default_rng(0).standard_normal((1, 10, 14, 4)).astype(np.float32)
    _check(model, {"x": x})


def test_padding_by_zeros_disappears():
    model = _static(_window_pad(), {"H": 14, "W": 7})  # both pads 0: the Pad is a no-op
    assert [n.op_type for n in prepare(model).graph] == ["Relu"]
    x = np.random.default_rng(1).standard_normal((1, 14, 7, 4)).astype(np.float32)
    _check(model, {"x": x})


def test_dynamic_window_padding_stays_and_is_right_at_every_size():
    model = _window_pad()
    assert "Shape" in [n.op_type for n in prepare(model).graph]
    for h, w in ((10, 14), (7, 7), (3, 20)):
        x = np.random.default_rng(h).standard_normal((1, h, w, 4)).astype(np.float32)
        _check(model, {"x": x})


@pytest.mark.parametrize("pick,expect", [
    (("Gather", [3], 0), [8]),            # 1-D index
    (("Gather", -1, 0), 8),               # scalar index: a scalar
    (("Slice", [-2], [2**62]), None),     # takes T: symbolic, stays
    (("Slice", [1], [2]), [2]),
    (("Gather", [0, 1], 0), [1, 2]),
])
def test_shape_picks_of_static_dims_become_constants(pick, expect):
    """Shape(x) of x (1, 2, T, 8), then one Gather/Slice; the picked dims fold when static."""
    from nnport.passes.normalize.shapes import fold_static_dims
    from nnport.io import load_model
    from nnport.passes.normalize.shapes import infer_shapes

    op, a, b = pick
    f = helper.make_node
    inits = [numpy_helper.from_array(np.array(a, np.int64), "a")]
    if op == "Gather":
        node = f("Gather", ["s", "a"], ["p"], axis=b)
    else:
        inits.append(numpy_helper.from_array(np.array(b, np.int64), "b"))
        node = f("Slice", ["s", "a", "b"], ["p"])
    g = helper.make_graph([f("Shape", ["x"], ["s"]), node, f("Cast", ["p"], ["y"], to=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "T", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = load_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    infer_shapes(model)
    assert fold_static_dims(model).modified == (expect is not None)
    cast = next(n for n in model.graph if n.op_type == "Cast")
    if expect is None:
        assert cast.inputs[0].const_value is None
    else:
        assert cast.inputs[0].const_value.numpy().tolist() == expect
