"""Softmax family (legacy 2-D coercion vs per-axis), Attention, RotaryEmbedding, SwiGLU, losses."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from nnport.convert import generate_torch
from util import F32, I64, assert_matches_ort, one_node_model, torch_run

rng = np.random.default_rng(2)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, 0), (1, -2), (13, 1), (13, -1)])
def test_softmax_axis_semantics(op, opset, axis):
    x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    m = one_node_model(op, {"x": (F32, [2, 3, 4])}, {"y": (F32, [2, 3, 4])},
                       attrs={"axis": axis}, opset=opset)
    assert_matches_ort(m, {"x": x})


def test_softmax_last_axis_is_simple():
    m = one_node_model("Softmax", {"x": (F32, ["B", 4, 8])}, {"y": (F32, ["B", 4, 8])},
                       opset=13)
    assert "torch.softmax(x, dim=-1)" in generate_torch(m)[0]
    m = one_node_model("Softmax", {"x": (F32, [2, 8])}, {"y": (F32, [2, 8])}, opset=11)
    assert "torch.softmax(x, dim=-1)" in generate_torch(m)[0]


def _attention_model(q, k, v, attrs, extra_inputs=(), n_out=1, opset=23):
    ins = [helper.make_tensor_value_info("Q", F32, q), helper.make_tensor_value_info("K", F32, k),
           helper.make_tensor_value_info("V", F32, v)]
    names = ["Q", "K", "V"]
    for name, t, shape in extra_inputs:
        names.append(name)
        if name:
            ins.append(helper.make_tensor_value_info(name, t, shape))
    outs = ["Y", "present_key", "present_value", "qk"][:n_out]
    node = helper.make_node("Attention", names, outs, **attrs)
    graph = helper.make_graph([node], "g", ins,
                              [helper.make_tensor_value_info(o, F32, None) for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ref_attention(model, feeds):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def test_attention_simple_uses_sdpa_and_matches_reference():
    q = rng.standard_normal((2, 4, 5, 8), dtype=np.float32)
    k = rng.standard_normal((2, 2, 7, 8), dtype=np.float32)
    v = rng.standard_normal((2, 2, 7, 8), dtype=np.float32)
    m = _attention_model([2, 4, 5, 8], [2, 2, 7, 8], [2, 2, 7, 8], {"is_causal": 1})
    src = generate_torch(m)[0]
    assert "F.scaled_dot_product_attention(Q, K, V, is_causal=True, enable_gqa=True)" in src
    feeds = {"Q": q, "K": k, "V": v}
    np.testing.assert_allclose(torch_run(m, feeds)[0], _ref_attention(m, feeds)[0],
                               rtol=1e-5, atol=1e-5)


def test_attention_3d_with_past_and_mask_uses_helper():
    q = rng.standard_normal((1, 3, 8), dtype=np.float32)
    k = rng.standard_normal((1, 3, 8), dtype=np.float32)
    v = rng.standard_normal((1, 3, 8), dtype=np.float32)
    mask = rng.standard_normal((3, 5), dtype=np.float32)
    pk = rng.standard_normal((1, 2, 2, 4), dtype=np.float32)
    pv = rng.standard_normal((1, 2, 2, 4), dtype=np.float32)
    m = _attention_model([1, 3, 8], [1, 3, 8], [1, 3, 8],
                         {"q_num_heads": 2, "kv_num_heads": 2, "is_causal": 1, "softcap": 2.0},
                         [("attn_mask", F32, [3, 5]), ("past_key", F32, [1, 2, 2, 4]),
                          ("past_value", F32, [1, 2, 2, 4])], n_out=3)
    assert "_onnx_attention(" in generate_torch(m)[0]
    feeds = {"Q": q, "K": k, "V": v, "attn_mask": mask, "past_key": pk, "past_value": pv}
    for got, exp in zip(torch_run(m, feeds), _ref_attention(m, feeds)):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-5)


def test_rotary_embedding_matches_reference():
    x = rng.standard_normal((2, 3, 4, 8), dtype=np.float32)
    cos = rng.standard_normal((10, 2), dtype=np.float32)
    sin = rng.standard_normal((10, 2), dtype=np.float32)
    pos = np.array([[0, 1, 2, 3], [4, 5, 6, 7]], np.int64)
    m = one_node_model("RotaryEmbedding", {"x": (F32, [2, 3, 4, 8]), "cos": (F32, [10, 2]),
                                           "sin": (F32, [10, 2]), "pos": (I64, [2, 4])},
                       {"y": (F32, [2, 3, 4, 8])},
                       attrs={"interleaved": 1, "rotary_embedding_dim": 4}, opset=23)
    feeds = {"x": x, "cos": cos, "sin": sin, "pos": pos}
    np.testing.assert_allclose(torch_run(m, feeds)[0], _ref_attention(m, feeds)[0],
                               rtol=1e-5, atol=1e-6)


def test_swiglu_is_silu_times_gate():
    m = one_node_model("SwiGLU", {"a": (F32, [2, 3]), "b": (F32, [2, 3])}, {"y": (F32, [2, 3])},
                       opset=28)
    assert "F.silu(a) * b" in generate_torch(m)[0]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_softmax_cross_entropy_two_outputs(reduction):
    m = one_node_model("SoftmaxCrossEntropyLoss",
                       {"x": (F32, [3, 5, 2]), "t": (TensorProto.INT32, [3, 2]),
                        "w": (F32, [5])}, {"loss": (F32, None), "logp": (F32, [3, 5, 2])},
                       attrs={"reduction": reduction, "ignore_index": 1}, opset=13)
    t = np.array([[0, 1], [4, 2], [1, 3]], np.int32)
    assert_matches_ort(m, {"x": rng.standard_normal((3, 5, 2), dtype=np.float32), "t": t,
                           "w": rng.random(5, dtype=np.float32)})


def test_nll_loss():
    m = one_node_model("NegativeLogLikelihoodLoss", {"x": (F32, [4, 3]), "t": (I64, [4])},
                       {"loss": (F32, [])}, opset=13)
    assert "F.nll_loss(x, t)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": rng.standard_normal((4, 3), dtype=np.float32),
                           "t": np.array([0, 2, 1, 2], np.int64)})


# ---- random generators (only shapes, dtypes and seeding can be checked) -----------------------
def test_random_normal_seeded_shape_dtype_repeatable():
    m = one_node_model("RandomNormal", {}, {"y": (TensorProto.DOUBLE, [3, 4])},
                       attrs={"shape": [3, 4], "dtype": TensorProto.DOUBLE, "seed": 5.0,
                              "mean": 2.0}, opset=22)
    a, b = torch_run(m, {})[0], torch_run(m, {})[0]
    assert a.shape == (3, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean() - 2.0) < 1.5


def test_random_uniform_like_and_multinomial():
    m = one_node_model("RandomUniformLike", {"x": (F32, [2, 5])}, {"y": (F32, [2, 5])},
                       attrs={"low": -1.0, "high": 3.0}, opset=22)
    y = torch_run(m, {"x": np.zeros((2, 5), np.float32)})[0]
    assert y.shape == (2, 5) and y.dtype == np.float32 and y.min() >= -1 and y.max() <= 3
    m = one_node_model("Multinomial", {"x": (F32, [2, 3])}, {"y": (TensorProto.INT32, [2, 7])},
                       attrs={"sample_size": 7}, opset=22)
    y = torch_run(m, {"x": np.log(np.array([[0.0, 1, 0], [1, 0, 0]], np.float32) + 1e-30)})[0]
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [[1] * 7, [0] * 7])


def test_attention_3d_gqa_sdpa_with_present_outputs():
    q = rng.standard_normal((2, 5, 16), dtype=np.float32)
    k = rng.standard_normal((2, 6, 8), dtype=np.float32)
    v = rng.standard_normal((2, 6, 12), dtype=np.float32)
    m = _attention_model([2, 5, 16], [2, 6, 8], [2, 6, 12],
                         {"q_num_heads": 4, "kv_num_heads": 2, "scale": 0.3}, n_out=3)
    src = generate_torch(m)[0]
    assert "F.scaled_dot_product_attention(" in src and "_onnx_attention" not in src
    feeds = {"Q": q, "K": k, "V": v}
    for got, exp in zip(torch_run(m, feeds), _ref_attention(m, feeds)):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-5)
