"""onnxruntime contrib ops (com.microsoft): one hand-built node each, compared with onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import F32, assert_matches_ort, torch_run

I32, I64, U8, I8 = TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.INT8
RNG = np.random.default_rng(0)
MS = "com.microsoft"


def contrib_model(op, inputs, outputs, attrs=None, inits=None, order=None, domain=MS,
                  opset=17):
    """One node of ``domain``.  inputs/outputs: name -> (elem_type, shape); inits: name ->
    ndarray.  ``order``: the node's input names ("" for a skipped optional input), default
    graph inputs then initializers."""
    inits = inits or {}
    names = order if order is not None else [*inputs, *inits]
    node = helper.make_node(op, names, list(outputs), domain=domain, **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in outputs.items()],
        [numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                   helper.make_opsetid(MS, 1)])


def _f(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def test_gelu_family():
    x = _f(2, 3, 8, scale=2)
    b = _f(8)
    m = contrib_model("Gelu", {"x": (F32, [2, 3, 8])}, {"y": (F32, None)})
    assert "F.gelu(x)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": x})
    m = contrib_model("BiasGelu", {"x": (F32, [2, 3, 8])}, {"y": (F32, None)}, inits={"b": b})
    assert_matches_ort(m, {"x": x})
    m = contrib_model("FastGelu", {"x": (F32, [2, 3, 8])}, {"y": (F32, None)}, inits={"b": b})
    assert "approximate='tanh'" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": x})
    m = contrib_model("FastGelu", {"x": (F32, [2, 3, 8])}, {"y": (F32, None)})
    assert_matches_ort(m, {"x": x})
    for attrs in ({}, {"alpha": 1.5}):
        m = contrib_model("QuickGelu", {"x": (F32, [2, 3, 8])}, {"y": (F32, None)}, attrs)
        assert_matches_ort(m, {"x": x})


def test_bias_add():
    # onnxruntime has BiasAdd for CUDA only: the spec's formula is the reference here
    b, x, skip = _f(8), _f(2, 4, 8), _f(2, 4, 8)
    m = contrib_model("BiasAdd", {"x": (F32, [2, 4, 8]), "skip": (F32, [2, 4, 8])},
                      {"y": (F32, None)}, inits={"b": b}, order=["x", "b", "skip"])
    np.testing.assert_allclose(torch_run(m, {"x": x, "skip": skip})[0], x + b + skip,
                               rtol=1e-6)


@pytest.mark.parametrize("attrs,sa,sb", [
    ({}, [2, 3, 4], [4, 5]),
    ({"transA": 1, "alpha": 0.5}, [2, 4, 3], [4, 5]),
    ({"transB": 1}, [2, 3, 4], [2, 5, 4]),
    ({"transBatchA": 1}, [3, 2, 4], [2, 4, 5]),
    ({"transBatchB": 1, "transB": 1}, [2, 3, 4], [5, 2, 4]),
    ({"transBatchA": 1, "transA": 1, "transBatchB": 1}, [4, 2, 3, 5], [4, 2, 3, 6]),
])
def test_fused_matmul(attrs, sa, sb):
    m = contrib_model("FusedMatMul", {"a": (F32, sa), "b": (F32, sb)}, {"y": (F32, None)},
                      attrs)
    assert_matches_ort(m, {"a": _f(*sa), "b": _f(*sb)})


@pytest.mark.parametrize("activation,params,with_z", [
    ("Relu", None, False), ("LeakyRelu", [0.2], True), ("Clip", [-0.5, 0.7], False),
    ("HardSigmoid", [0.3, 0.4], False), ("Sigmoid", None, True), ("Tanh", None, False), ("", None, False),
])
def test_fused_conv(activation, params, with_z):
    attrs = {"pads": [1, 1, 1, 1], "strides": [1, 1]}
    if activation:
        attrs["activation"] = activation
    if params:
        attrs["activation_params"] = params
    inputs = {"x": (F32, [1, 3, 6, 6])}
    order = ["x", "w", "b"]
    if with_z:
        inputs["z"] = (F32, [1, 4, 6, 6])
        order.append("z")
    m = contrib_model("FusedConv", inputs, {"y": (F32, None)}, attrs,
                      inits={"w": _f(4, 3, 3, 3), "b": _f(4)}, order=order)
    feeds = {"x": _f(1, 3, 6, 6)}
    if with_z:
        feeds["z"] = _f(1, 4, 6, 6)
    assert_matches_ort(m, feeds)


@pytest.mark.parametrize("with_beta,with_bias,extra_out", [
    (True, True, True), (True, False, False), (False, True, True)])
def test_skip_layer_norm(with_beta, with_bias, extra_out):
    inits = {"gamma": _f(8) + 1}
    order = ["x", "skip", "gamma", "beta" if with_beta else "", "bias" if with_bias else ""]
    if with_beta:
        inits["beta"] = _f(8)
    if with_bias:
        inits["bias"] = _f(8)
    m = contrib_model("SkipLayerNormalization", {"x": (F32, [2, 3, 8]),
                                                 "skip": (F32, [2, 3, 8])},
                      {"y": (F32, None)}, {"epsilon": 1e-5}, inits=inits,
                      order=order)
    if extra_out:
        m.graph.node[0].output[:] = ["y", "", "", "sum"]
        m.graph.output.append(helper.make_tensor_value_info("sum", F32, None))
    src = generate_torch(m)[0]
    assert "nn.LayerNorm(8, eps=0.00001" in src
    assert_matches_ort(m, {"x": _f(2, 3, 8), "skip": _f(2, 3, 8)})


@pytest.mark.parametrize("with_bias", [True, False])
def test_skip_simplified_layer_norm(with_bias):
    inits = {"gamma": _f(8) + 1}
    order = ["x", "skip", "gamma"]
    if with_bias:
        inits["bias"] = _f(8)
        order.append("bias")
    m = contrib_model("SkipSimplifiedLayerNormalization",
                      {"x": (F32, [2, 3, 8]), "skip": (F32, [1, 3, 8])}, {"y": (F32, None)},
                      {"epsilon": 1e-6}, inits=inits, order=order)
    m.graph.node[0].output[:] = ["y", "", "", "sum"]
    m.graph.output.append(helper.make_tensor_value_info("sum", F32, None))
    assert "nn.RMSNorm(8" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": _f(2, 3, 8), "skip": _f(1, 3, 8)})


@pytest.mark.parametrize("axis,const", [(-1, True), (-1, False), (1, True)])
def test_simplified_layer_norm(axis, const):
    inputs = {"x": (F32, [2, 3, 8])}
    inits = {}
    sshape = [8] if axis == -1 else [3, 8]
    if const:
        inits["s"] = _f(*sshape) + 1
    else:
        inputs["s"] = (F32, sshape)
    m = contrib_model("SimplifiedLayerNormalization", inputs, {"y": (F32, None)},
                      {"axis": axis, "epsilon": 1e-6}, inits=inits, domain="")
    feeds = {"x": _f(2, 3, 8)}
    if not const:
        feeds["s"] = _f(*sshape)
    assert_matches_ort(m, feeds)


@pytest.mark.parametrize("segment,mask,pos_ids", [(True, True, False), (False, False, True),
                                                  (True, False, False)])
def test_embed_layer_norm(segment, mask, pos_ids):
    B, S, H, V = 2, 5, 8, 20
    inputs = {"ids": (I32, [B, S])}
    feeds = {"ids": RNG.integers(0, V, (B, S)).astype(np.int32)}
    inits = {"word": _f(V, H), "pos": _f(16, H), "seg": _f(2, H), "gamma": _f(H) + 1,
             "beta": _f(H)}
    order = ["ids", "segs" if segment else "", "word", "pos", "seg" if segment else "",
             "gamma", "beta", "mask" if mask else "", "pos_ids" if pos_ids else ""]
    if segment:
        inputs["segs"] = (I32, [B, S])
        feeds["segs"] = RNG.integers(0, 2, (B, S)).astype(np.int32)
    if mask:
        inputs["mask"] = (I32, [B, S])
        feeds["mask"] = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    if pos_ids:
        inputs["pos_ids"] = (I32, [1, S])
        feeds["pos_ids"] = np.array([[4, 3, 2, 1, 0]], np.int32)
    while order[-1] == "":
        order.pop()
    m = contrib_model("EmbedLayerNormalization", inputs,
                      {"y": (F32, None), "mask_index": (I32, None), "emb": (F32, None)},
                      {"epsilon": 1e-5}, inits=inits, order=order)
    if not segment:
        del m.graph.initializer[2]
    src = generate_torch(m)[0]
    assert "nn.Embedding(20, 8)" in src and "nn.LayerNorm(8" in src
    assert_matches_ort(m, feeds)


def test_inspect_counts_nodes_per_domain(tmp_path):
    import onnx

    import nnport
    from nnport.inspection import format_report

    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Gelu", ["r"], ["g"], domain=MS),
             helper.make_node("FastGelu", ["g"], ["f"], domain=MS),
             helper.make_node("Binarizer", ["f"], ["y"], domain="ai.onnx.ml", threshold=0.5)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [2, 3])],
                              [helper.make_tensor_value_info("y", F32, [2, 3])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid(MS, 1),
                                                helper.make_opsetid("ai.onnx.ml", 1)])
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    info = nnport.inspect(str(p))
    assert info["nodes_by_domain"] == {"ai.onnx": 1, "ai.onnx.ml": 1, "com.microsoft": 2}
    assert info["ops"]["com.microsoft::Gelu"] == 1
    text = "\n".join(format_report(info))
    assert "nodes: 4 (ai.onnx 1, ai.onnx.ml 1, com.microsoft 2)" in text
