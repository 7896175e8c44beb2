"""onnxruntime contrib ops (com.microsoft): one hand-built node each, compared with onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnport.convert import generate_torch
from util import F32, S8_EXACT, assert_matches_ort, ort_run, torch_run

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


# ---- attention ---------------------------------------------------------------------------------
def _attention_case(mask_kind, unidirectional=0, past=False, attention_bias=False, sizes=None):
    B, S, D, N, P = 2, 5, 16, 2, 3
    T = S + (P if past else 0)
    sizes = sizes or [D, D, D]
    inputs = {"x": (F32, [B, S, D])}
    feeds = {"x": _f(B, S, D)}
    order = ["x", "w", "b", "", "", ""]
    if mask_kind == "raw2d":
        inputs["mask"] = (I32, [B, T])
        mask = np.ones((B, T), np.int32)
        mask[0, -2:] = 0  # right padding
        mask[1, :1] = 0  # left padding
        feeds["mask"] = mask
    elif mask_kind == "raw3d":
        inputs["mask"] = (I32, [B, S, T])
        feeds["mask"] = RNG.integers(0, 2, (B, S, T)).astype(np.int32)
        feeds["mask"][..., 0] = 1
    elif mask_kind == "lengths":
        inputs["mask"] = (I32, [B])
        feeds["mask"] = np.array([T - 2, T], np.int32)
    elif mask_kind == "end_start":
        inputs["mask"] = (I32, [2 * B])
        feeds["mask"] = np.array([T, T - 1, 1, 0], np.int32)
    if mask_kind:
        order[3] = "mask"
    if past:
        inputs["past"] = (F32, [2, B, N, P, sizes[0] // N])
        feeds["past"] = _f(2, B, N, P, sizes[0] // N)
        order[4] = "past"
    if attention_bias:
        inputs["ab"] = (F32, [1, N, S, T])
        feeds["ab"] = _f(1, N, S, T)
        order[5] = "ab"
    while order[-1] == "":
        order.pop()
    attrs = {"num_heads": N, "unidirectional": unidirectional}
    if sizes != [D, D, D]:
        attrs["qkv_hidden_sizes"] = sizes
    outs = {"y": (F32, None)}
    if past:
        outs["present"] = (F32, None)
    m = contrib_model("Attention", inputs, outs, attrs,
                      inits={"w": _f(D, sum(sizes), scale=0.3), "b": _f(sum(sizes))},
                      order=order)
    return m, feeds


@pytest.mark.parametrize("mask_kind,uni,past,ab", [
    (None, 0, False, False), ("raw2d", 0, False, False), ("raw3d", 0, False, True),
    ("lengths", 0, False, False), ("end_start", 0, False, False), (None, 1, False, False),
    ("raw2d", 1, True, False), (None, 1, True, False), ("raw2d", 0, True, False)])
def test_attention(mask_kind, uni, past, ab):
    m, feeds = _attention_case(mask_kind, uni, past, ab)
    src = generate_torch(m)[0]
    assert "F.scaled_dot_product_attention(" in src and "nn.Linear(16, 48)" in src
    assert_matches_ort(m, feeds)


def test_attention_qkv_hidden_sizes():
    m, feeds = _attention_case("raw2d", sizes=[16, 16, 8])
    assert_matches_ort(m, feeds)


def _mha_case(kind, mask=False, past=False, uni=0, bias=True, L=None):
    B, S, N, H = 2, 4, 2, 8
    L = L or (S if uni else 6)
    D = N * H
    inputs, feeds, order = {}, {}, []

    def add(name, shape, value=None):
        inputs[name] = (F32 if value is None or value.dtype == np.float32 else I32, shape)
        feeds[name] = _f(*shape) if value is None else value
        order.append(name)

    if kind == "packed_qkv":
        add("qkv", [B, S, N, 3, H])
        order += ["", "", ""]
    else:
        add("q", [B, S, D])
        if kind == "packed_kv":
            add("kv", [B, L, N, 2, H])
            order.append("")
        elif kind == "bnsh":
            add("k", [B, N, L, H])
            add("v", [B, N, L, H])
        else:
            add("k", [B, L, D])
            add("v", [B, L, D])
        order.append("bias" if bias else "")
    Lt = L + (3 if past else 0) if kind != "packed_qkv" else S
    if mask:
        m = np.ones((B, Lt), np.int32)
        m[0, -2:] = 0
        add("mask", [B, Lt], m)
    else:
        order.append("")
    order.append("")
    if past:
        add("past_k", [B, N, 3, H])
        add("past_v", [B, N, 3, H])
    while order[-1] == "":
        order.pop()
    outs = {"y": (F32, None)}
    if past:
        outs.update({"present_k": (F32, None), "present_v": (F32, None)})
    inits = {"bias": _f(3 * D)} if bias and kind != "packed_qkv" else {}
    m = contrib_model("MultiHeadAttention", inputs, outs, {"num_heads": N, "unidirectional": uni},
                      inits=inits, order=order)
    return m, feeds


@pytest.mark.parametrize("kind,mask,past,uni,bias", [
    ("separate", False, False, 0, True), ("separate", True, False, 0, True),
    ("separate", True, True, 0, False), ("separate", False, True, 1, True),
    ("packed_kv", True, False, 0, False), ("packed_qkv", False, False, 0, False),
    ("bnsh", True, False, 0, True)])
def test_multi_head_attention(kind, mask, past, uni, bias):
    m, feeds = _mha_case(kind, mask, past, uni, bias)
    if kind.startswith("packed"):
        # onnxruntime runs packed Q/K/V on CUDA only: compare with the same data unpacked
        got = torch_run(m, feeds)
        um, ufeeds = _mha_case("separate", mask, past, uni, bias,
                               L=4 if kind == "packed_qkv" else None)
        if kind == "packed_qkv":
            qkv = feeds["qkv"]
            for i, n in enumerate("qkv"):
                ufeeds[n] = qkv[:, :, :, i].reshape(*qkv.shape[:2], -1)
        else:
            for i, n in enumerate("kv"):
                ufeeds[n] = feeds["kv"][:, :, :, i].reshape(*feeds["kv"].shape[:2], -1)
            ufeeds["q"], ufeeds["mask"] = feeds["q"], feeds["mask"]
        ref = ort_run(um, ufeeds)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-5)
        return
    assert_matches_ort(m, feeds)


def _gqa_case(B, S, P, N=4, NKV=2, H=16, rotary=False, window=-1, total=None, seqlens=None,
              packed=False, softcap=0.0, sink=None, qk_norm=False):
    total = total if total is not None else P + S
    inputs = {}
    feeds = {}
    if packed:
        inputs["qkv"] = (F32, [B, S, (N + 2 * NKV) * H])
        feeds["qkv"] = _f(B, S, (N + 2 * NKV) * H)
        order = ["qkv", "", ""]
    else:
        for name, h in (("q", N), ("k", NKV), ("v", NKV)):
            inputs[name] = (F32, [B, S, h * H])
            feeds[name] = _f(B, S, h * H)
        order = ["q", "k", "v"]
    inputs["past_k"] = (F32, [B, NKV, P, H])
    inputs["past_v"] = (F32, [B, NKV, P, H])
    feeds["past_k"], feeds["past_v"] = _f(B, NKV, P, H), _f(B, NKV, P, H)
    inputs["seqlens_k"] = (I32, [B])
    inputs["total"] = (I32, [])
    feeds["seqlens_k"] = (np.array(seqlens, np.int32) if seqlens is not None
                          else np.full(B, total - 1, np.int32))
    feeds["total"] = np.array(total, np.int32)
    order += ["past_k", "past_v", "seqlens_k", "total"]
    inits = {}
    attrs = {"num_heads": N, "kv_num_heads": NKV}
    if rotary:
        angle = np.arange(32)[:, None] * 0.1 * np.arange(1, H // 2 + 1)
        inits = {"cos": np.cos(angle).astype(np.float32), "sin": np.sin(angle).astype(np.float32)}
        order += ["cos", "sin"]
        attrs["do_rotary"] = 1
    if window >= 0:
        attrs["local_window_size"] = window
    if softcap:
        attrs["softcap"] = softcap
    if sink == "smooth":
        attrs["smooth_softmax"] = 1
    elif sink == "head_sink":
        if not rotary:
            order += ["", ""]
        order += ["", "", "sink"]
        inits["sink"] = _f(N)
    if qk_norm:
        order += [""] * (14 - len(order)) + ["qn", "kn"]
        inits["qn"], inits["kn"] = _f(H) + 1, _f(H) + 1
        attrs["k_norm_epsilon"] = 1e-5
    m = contrib_model("GroupQueryAttention", inputs,
                      {"y": (F32, None), "present_k": (F32, None), "present_v": (F32, None)},
                      attrs, inits=inits, order=order)
    return m, feeds


@pytest.mark.parametrize("B,S,P,kw", [
    (2, 5, 0, {}), (2, 1, 4, {}), (1, 3, 4, {}), (2, 5, 0, {"rotary": True}),
    (2, 1, 6, {"rotary": True}), (1, 6, 0, {"window": 2}), (2, 1, 5, {"window": 2}),
    (2, 4, 0, {"packed": True}), (2, 1, 3, {"softcap": 2.0}), (2, 3, 0, {"sink": "smooth"}),
    (2, 1, 4, {"sink": "head_sink"})])
def test_group_query_attention(B, S, P, kw):
    m, feeds = _gqa_case(B, S, P, **kw)
    assert "_group_query_attention(" in generate_torch(m)[0]
    assert_matches_ort(m, feeds)


@pytest.mark.parametrize("B,S,P", [(2, 3, 0), (2, 1, 4)])
def test_group_query_attention_qk_norm(B, S, P):
    """q/k RMS norm weights (Qwen3): onnxruntime runs them on CUDA only; the spec defines them
    as Reshape -> SimplifiedLayerNormalization -> Reshape of q and k before the rotary
    embedding, so the reference is the plain node fed with q and k normalized per head."""
    m, feeds = _gqa_case(B, S, P, rotary=True, qk_norm=True)
    got = torch_run(m, feeds)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}

    def rms(x, w, eps):
        h = x.reshape(*x.shape[:2], -1, 16)
        h = h / np.sqrt((h * h).mean(-1, keepdims=True) + eps) * w
        return h.reshape(x.shape).astype(np.float32)

    ref_m, _ = _gqa_case(B, S, P, rotary=True)
    ref_feeds = dict(feeds, q=rms(feeds["q"], inits["qn"], 1e-6),
                     k=rms(feeds["k"], inits["kn"], 1e-5))
    ref = ort_run(ref_m, ref_feeds)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_group_query_attention_shared_buffer():
    """past_key / past_value of the cache's full length (8) holding 4 tokens: the new token
    goes to row 4; rows past 5 are unspecified."""
    m, feeds = _gqa_case(1, 1, 8, total=5, seqlens=[4])
    ref = ort_run(m, feeds)
    got = torch_run(m, feeds)
    assert ref[1].shape == got[1].shape == (1, 2, 8, 16)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-5)
    for r, g in zip(ref[1:], got[1:]):
        np.testing.assert_allclose(g[:, :, :5], r[:, :, :5], rtol=1e-6, atol=1e-6)


def test_group_query_attention_right_padded_prompt():
    """A first prompt of two sequences of 5 and 3 tokens: the valid rows and cache match."""
    m, feeds = _gqa_case(2, 5, 0, seqlens=[4, 2], total=5)
    ref = ort_run(m, feeds)
    got = torch_run(m, feeds)
    np.testing.assert_allclose(got[0][0], ref[0][0], atol=1e-5)
    np.testing.assert_allclose(got[0][1, :3], ref[0][1, :3], atol=1e-5)
    np.testing.assert_allclose(got[1][1, :, :3], ref[1][1, :, :3], atol=1e-6)


@pytest.mark.parametrize("shape,pos,kw", [
    ([2, 4, 16], "2d", {}), ([2, 4, 16], "offset", {"interleaved": 1}),
    ([2, 2, 4, 8], "2d", {}), ([2, 4, 16], "2d", {"num_heads": 2, "rotary_embedding_dim": 4})])
def test_rotary_embedding(shape, pos, kw):
    rot = kw.get("rotary_embedding_dim", 8)
    cos = np.cos(np.arange(16)[:, None] * 0.3 * np.arange(1, rot // 2 + 1)).astype(np.float32)
    sin = np.sin(np.arange(16)[:, None] * 0.3 * np.arange(1, rot // 2 + 1)).astype(np.float32)
    S = shape[1] if len(shape) == 3 else shape[2]
    if pos == "2d":
        p = np.array([[0, 1, 2, 3], [5, 6, 7, 8]], np.int64)[:, :S]
    else:
        p = np.array([3], np.int64)
    m = contrib_model("RotaryEmbedding", {"x": (F32, shape), "pos": (I64, list(p.shape))},
                      {"y": (F32, None)}, kw, inits={"cos": cos, "sin": sin})
    assert_matches_ort(m, {"x": _f(*shape), "pos": p})


# ---- quantized ---------------------------------------------------------------------------------
def assert_quantized_close(m, feeds, steps=1):
    """Integer outputs within ``steps`` quantization steps of onnxruntime's (its kernels use
    lookup tables and fused multiplies: a value on a rounding boundary may go either way), and
    nearly all exact; float outputs at the default tolerance."""
    ref = ort_run(m, feeds)
    got = torch_run(m, feeds)
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert r.shape == g.shape and r.dtype == g.dtype, (r.shape, g.shape, r.dtype, g.dtype)
        if r.dtype.kind in "iu":
            diff = np.abs(r.astype(np.int64) - g.astype(np.int64))
            assert diff.max() <= steps, diff.max()
            assert (diff == 0).mean() >= 0.95, (diff == 0).mean()
        else:
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def _pack(q, bits):
    """(..., n) values < 2**bits -> uint8 bytes holding 8 // bits of them, low bits first."""
    per = 8 // bits
    n = q.shape[-1]
    q = np.concatenate([q, np.zeros(q.shape[:-1] + (-n % per,), q.dtype)], -1).astype(np.uint8)
    q = q.reshape(q.shape[:-1] + (-1, per))
    return sum((q[..., i] << (bits * i)) for i in range(per)).astype(np.uint8)


@pytest.mark.parametrize("bits,K,zp,bias,acc", [
    (4, 64, "packed", False, 0), (4, 48, None, True, 0), (8, 64, "packed", True, 0),
    (4, 64, "float", False, 0), (2, 64, "packed", False, 0), (4, 64, "packed", True, 4),
    (4, 48, None, False, 4), (8, 64, "packed", False, 4)])
def test_matmul_nbits(bits, K, zp, bias, acc):
    N, block = 6, 16
    kb = -(-K // block)
    q = RNG.integers(0, 2 ** bits, (N, kb * block)).astype(np.uint8)
    inits = {"B": _pack(q, bits).reshape(N, kb, block * bits // 8),
             "scales": RNG.uniform(0.01, 0.1, (N, kb)).astype(np.float32)}
    order = ["a", "B", "scales"]
    if zp == "packed":
        inits["zp"] = _pack(RNG.integers(0, 2 ** bits, (N, kb)), bits)
        order.append("zp")
    elif zp == "float":
        inits["zp"] = RNG.uniform(0, 2 ** bits, (N, kb)).astype(np.float32)
        order.append("zp")
    if bias:
        inits["bias"] = _f(N)
        order += ["" if zp is None else None, "", "bias"]
        order = [o for o in order if o is not None]
        if zp is None:
            order = ["a", "B", "scales", "", "", "bias"]
    m = contrib_model("MatMulNBits", {"a": (F32, [2, 3, K])}, {"y": (F32, None)},
                      {"K": K, "N": N, "bits": bits, "block_size": block,
                       "accuracy_level": acc}, inits=inits,
                      order=order)
    src = generate_torch(m)[0]
    assert "dequantized here" in src and "F.linear(" in src
    assert_matches_ort(m, {"a": _f(2, 3, K)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,gather_axis,quantize_axis", [
    ("uint8_4bit", 0, 1), ("uint8_8bit", 0, 1), ("int4", 0, 1), ("uint4", 1, 0),
    ("int4", 0, 0)])
def test_gather_block_quantized(kind, gather_axis, quantize_axis):
    import ml_dtypes

    rows, cols, block = 8, 32, 16
    shape = [rows, cols]
    nblk = [rows, cols]
    nblk[quantize_axis] = -(-nblk[quantize_axis] // block)
    scales = RNG.uniform(0.01, 0.1, nblk).astype(np.float32)
    if kind.startswith("uint8"):
        bits = 4 if kind == "uint8_4bit" else 8
        q = RNG.integers(0, 2 ** bits, shape)
        data = _pack(q, bits) if bits == 4 else q.astype(np.uint8)
        zp = _pack(RNG.integers(0, 2 ** bits, nblk), bits) if bits == 4 else \
            RNG.integers(0, 256, nblk).astype(np.uint8)
        attrs = {"bits": bits}
    else:
        dt = ml_dtypes.int4 if kind == "int4" else ml_dtypes.uint4
        lo, hi = (-8, 8) if kind == "int4" else (0, 16)
        data = RNG.integers(lo, hi, shape).astype(dt)
        zp = RNG.integers(lo, hi, nblk).astype(dt)
        attrs = {}
    attrs.update({"block_size": block, "gather_axis": gather_axis,
                  "quantize_axis": quantize_axis})
    n = shape[gather_axis]
    idx = np.array([[0, n - 1, 3], [-1, 2, 2]], np.int64)
    m = contrib_model("GatherBlockQuantized", {"idx": (I64, [2, 3])}, {"y": (F32, None)}, attrs,
                      inits={"data": data, "scales": scales, "zp": zp},
                      order=["data", "idx", "scales", "zp"])
    assert_matches_ort(m, {"idx": idx})


@pytest.mark.parametrize("b_type,per_column,bias", [(I8, False, True), (U8, True, False)])
def test_dynamic_quantize_matmul(b_type, per_column, bias):
    K, N = 8, 5
    np_t = np.int8 if b_type == I8 else np.uint8
    lo, hi = S8_EXACT if b_type == I8 else (0, 256)
    inits = {"B": RNG.integers(lo, hi, (K, N)).astype(np_t),
             "bs": RNG.uniform(0.01, 0.05, N if per_column else ()).astype(np.float32),
             "bz": RNG.integers(lo // 4, hi // 4, N if per_column else ()).astype(np_t)}
    if bias:
        inits["bias"] = _f(N)
    m = contrib_model("DynamicQuantizeMatMul", {"a": (F32, [2, 3, K])}, {"y": (F32, None)},
                      inits=inits)
    assert_matches_ort(m, {"a": _f(2, 3, K, scale=3)}, rtol=1e-4, atol=1e-5)


def test_matmul_integer_to_float():
    inits = {"B": RNG.integers(*S8_EXACT, (8, 5)).astype(np.int8),
             "a_s": np.array(0.02, np.float32), "b_s": RNG.uniform(0.01, 0.05, 5).astype(np.float32),
             "a_z": np.array(120, np.uint8), "b_z": RNG.integers(-3, 3, 5).astype(np.int8),
             "bias": _f(5)}
    m = contrib_model("MatMulIntegerToFloat", {"a": (U8, [3, 8])}, {"y": (F32, None)},
                      inits=inits, order=["a", "B", "a_s", "b_s", "a_z", "b_z", "bias"])
    assert_matches_ort(m, {"a": RNG.integers(0, 256, (3, 8)).astype(np.uint8)})


@pytest.mark.parametrize("quantized_out,transB,with_c", [(True, 0, True), (False, 1, False),
                                                         (True, 1, False)])
def test_qgemm(quantized_out, transB, with_c):
    M, K, N = 3, 8, 5
    b = RNG.integers(*S8_EXACT, (N, K) if transB else (K, N)).astype(np.int8)
    inits = {"a_s": np.array(0.05, np.float32), "a_z": np.array(110, np.uint8), "B": b,
             "b_s": RNG.uniform(0.01, 0.03, N).astype(np.float32), "b_z": np.zeros(N, np.int8)}
    order = ["a", "a_s", "a_z", "B", "b_s", "b_z"]
    if with_c:
        inits["C"] = RNG.integers(-1000, 1000, N).astype(np.int32)
    order.append("C" if with_c else "")
    if quantized_out:
        inits["y_s"] = np.array(0.3, np.float32)
        inits["y_z"] = np.array(128, np.uint8)
        order += ["y_s", "y_z"]
    while order[-1] == "":
        order.pop()
    m = contrib_model("QGemm", {"a": (U8, [M, K])},
                      {"y": (U8 if quantized_out else F32, None)},
                      {"transB": transB, "alpha": 0.5}, inits=inits, order=order)
    assert_quantized_close(m, {"a": RNG.integers(0, 256, (M, K)).astype(np.uint8)})


def _qparams(prefix, t=U8):
    s = RNG.uniform(0.02, 0.1)
    z = RNG.integers(100, 150) if t == U8 else RNG.integers(-20, 20)
    return {f"{prefix}_s": np.array(s, np.float32),
            f"{prefix}_z": np.array(z, np.uint8 if t == U8 else np.int8)}


def _qx(shape, t=U8):
    return (RNG.integers(0, 256, shape).astype(np.uint8) if t == U8
            else RNG.integers(-128, 128, shape).astype(np.int8))


@pytest.mark.parametrize("op,t", [("QLinearAdd", U8), ("QLinearMul", U8), ("QLinearAdd", I8),
                                  ("QLinearMul", I8)])
def test_qlinear_binary(op, t):
    inits = {**_qparams("a", t), **_qparams("b", t), **_qparams("c", t)}
    m = contrib_model(op, {"a": (t, [2, 3, 4]), "b": (t, [3, 4])}, {"y": (t, None)},
                      inits=inits, order=["a", "a_s", "a_z", "b", "b_s", "b_z", "c_s", "c_z"])
    assert_quantized_close(m, {"a": _qx([2, 3, 4], t), "b": _qx([3, 4], t)})


@pytest.mark.parametrize("op,attrs,t", [("QLinearSigmoid", {}, U8), ("QLinearSigmoid", {}, I8),
                                        ("QLinearLeakyRelu", {"alpha": 0.2}, U8)])
def test_qlinear_unary(op, attrs, t):
    inits = {**_qparams("x", t), "y_s": np.array(1 / 256 if op == "QLinearSigmoid" else 0.05,
                                                 np.float32),
             "y_z": np.array(0 if t == U8 else -128, np.uint8 if t == U8 else np.int8)}
    m = contrib_model(op, {"x": (t, [4, 16])}, {"y": (t, None)}, attrs, inits=inits,
                      order=["x", "x_s", "x_z", "y_s", "y_z"])
    x = np.arange(64).reshape(4, 16) * 4
    assert_quantized_close(m, {"x": (x if t == U8 else x - 128).astype(
        np.uint8 if t == U8 else np.int8)})


def test_qlinear_concat():
    inits = {**_qparams("y"), **_qparams("a"), **_qparams("b")}
    inits["c_s"], inits["c_z"] = inits["y_s"], inits["y_z"]  # already in the output's scale
    m = contrib_model("QLinearConcat", {"a": (U8, [2, 3]), "b": (U8, [2, 4]), "c": (U8, [2, 1])},
                      {"y": (U8, None)}, {"axis": 1}, inits=inits,
                      order=["y_s", "y_z", "a", "a_s", "a_z", "b", "b_s", "b_z", "c", "c_s",
                             "c_z"])
    assert_quantized_close(m, {"a": _qx([2, 3]), "b": _qx([2, 4]), "c": _qx([2, 1])})


@pytest.mark.parametrize("t,opset,axis", [(U8, 13, -1), (I8, 13, 1), (U8, 12, 1)])
def test_qlinear_softmax(t, opset, axis):
    inits = {**_qparams("x", t), "y_s": np.array(1 / 256, np.float32),
             "y_z": np.array(0 if t == U8 else -128, np.uint8 if t == U8 else np.int8)}
    m = contrib_model("QLinearSoftmax", {"x": (t, [2, 3, 6])}, {"y": (t, None)},
                      {"axis": axis, "opset": opset}, inits=inits,
                      order=["x", "x_s", "x_z", "y_s", "y_z"])
    assert_quantized_close(m, {"x": _qx([2, 3, 6], t)})


@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_global_average_pool(channels_last):
    shape = [2, 5, 5, 3] if channels_last else [2, 3, 5, 5]
    inits = {**_qparams("x"), **_qparams("y")}
    m = contrib_model("QLinearGlobalAveragePool", {"x": (U8, shape)}, {"y": (U8, None)},
                      {"channels_last": channels_last}, inits=inits)
    assert_quantized_close(m, {"x": _qx(shape)})


@pytest.mark.parametrize("attrs,channels_last", [
    ({"kernel_shape": [3, 3], "strides": [2, 2]}, 0),
    ({"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}, 0),
    ({"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 1)])
def test_qlinear_average_pool(attrs, channels_last):
    shape = [1, 7, 7, 3] if channels_last else [1, 3, 7, 7]
    inits = {**_qparams("x"), **_qparams("y")}
    m = contrib_model("QLinearAveragePool", {"x": (U8, shape)}, {"y": (U8, None)},
                      {**attrs, "channels_last": channels_last}, inits=inits)
    assert_quantized_close(m, {"x": _qx(shape)})


def _dq_lstm_case(direction="forward", per_channel=False, seq_lens=False, peephole=False):
    T, B, I, H = 5, 2, 4, 3
    D = 2 if direction == "bidirectional" else 1
    sshape = (D, 4 * H) if per_channel else (D,)
    inits = {"W": RNG.integers(*S8_EXACT, (D, I, 4 * H)).astype(np.int8),
             "R": RNG.integers(*S8_EXACT, (D, H, 4 * H)).astype(np.int8),
             "B": _f(D, 8 * H, scale=0.1),
             "W_s": RNG.uniform(0.002, 0.006, sshape).astype(np.float32),
             "W_z": np.zeros(sshape, np.int8),
             "R_s": RNG.uniform(0.002, 0.006, sshape).astype(np.float32),
             "R_z": np.zeros(sshape, np.int8)}
    inputs = {"X": (F32, [T, B, I])}
    feeds = {"X": _f(T, B, I)}
    if seq_lens:
        inputs["lens"] = (I32, [B])
        feeds["lens"] = np.array([5, 3], np.int32)
    if peephole:
        inits["P"] = _f(D, 3 * H)
    m = contrib_model("DynamicQuantizeLSTM", inputs,
                      {"Y": (F32, None), "Y_h": (F32, None), "Y_c": (F32, None)},
                      {"hidden_size": H, "direction": direction}, inits=inits,
                      order=["X", "W", "R", "B", "lens" if seq_lens else "", "", "",
                             "P" if peephole else "", "W_s", "W_z", "R_s", "R_z"])
    return m, feeds


@pytest.mark.parametrize("direction,per_channel,seq_lens,peephole", [
    ("forward", False, False, False), ("bidirectional", True, False, False),
    ("forward", False, True, False), ("reverse", False, True, True),
    ("bidirectional", False, True, False), ("forward", True, False, True)])
def test_dynamic_quantize_lstm(direction, per_channel, seq_lens, peephole):
    m, feeds = _dq_lstm_case(direction, per_channel, seq_lens, peephole)
    src = generate_torch(m)[0]
    assert "_dynamic_quantize_lstm(" in src
    # the GEMM inputs are quantized on the fly exactly as onnxruntime does (dequantizing the
    # weights into a float LSTM instead is 5e-3 off): default fp32 tolerance
    assert_matches_ort(m, feeds)


def test_skip_layer_norm_runtime_gamma():
    """gamma / beta given at run time: F.layer_norm over the sum (an expression)."""
    m = contrib_model("SkipLayerNormalization",
                      {"x": (F32, [2, 3, 8]), "skip": (F32, [2, 3, 8]), "g": (F32, [8]),
                       "b": (F32, [8])}, {"y": (F32, None)}, {"epsilon": 1e-5})
    assert_matches_ort(m, {"x": _f(2, 3, 8), "skip": _f(2, 3, 8), "g": _f(8), "b": _f(8)})


@pytest.mark.parametrize("mask,per_column", [(False, False), (True, True)])
def test_qattention(mask, per_column):
    B, S, D, N = 2, 5, 16, 2
    inits = {"w": RNG.integers(*S8_EXACT, (D, 3 * D)).astype(np.int8), "bias": _f(3 * D),
             "x_s": np.array(0.03, np.float32),
             "w_s": (RNG.uniform(0.002, 0.01, 3 * D) if per_column
                     else np.array(0.005)).astype(np.float32),
             "x_z": np.array(120, np.uint8), "w_z": np.zeros(3 * D if per_column else (),
                                                             np.int8)}
    inputs = {"x": (U8, [B, S, D])}
    feeds = {"x": _qx([B, S, D])}
    if mask:
        inputs["mask"] = (I32, [B, S])
        feeds["mask"] = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32)
    m = contrib_model("QAttention", inputs, {"y": (F32, None)}, {"num_heads": N}, inits=inits,
                      order=["x", "w", "bias", "x_s", "w_s", "mask" if mask else "", "x_z",
                             "w_z"])
    assert_matches_ort(m, feeds)


def test_qembed_layer_norm():
    B, S, H, V = 2, 5, 8, 20
    q = lambda *s: RNG.integers(0, 256, s).astype(np.uint8)  # noqa: E731
    sc = lambda: np.array(RNG.uniform(0.005, 0.02), np.float32)  # noqa: E731
    zp = lambda: np.array(RNG.integers(100, 150), np.uint8)  # noqa: E731
    inits = {"word": q(V, H), "pos": q(16, H), "seg": q(2, H), "gamma": q(H), "beta": q(H),
             "word_s": sc(), "pos_s": sc(), "seg_s": sc(), "gamma_s": sc(), "beta_s": sc(),
             "word_z": zp(), "pos_z": zp(), "seg_z": zp(), "gamma_z": zp(), "beta_z": zp()}
    m = contrib_model("QEmbedLayerNormalization",
                      {"ids": (I32, [B, S]), "segs": (I32, [B, S]), "mask": (I32, [B, S])},
                      {"y": (F32, None), "mask_index": (I32, None)}, {"epsilon": 1e-5},
                      inits=inits,
                      order=["ids", "segs", "word", "pos", "seg", "gamma", "beta", "mask",
                             "word_s", "pos_s", "seg_s", "gamma_s", "beta_s", "word_z",
                             "pos_z", "seg_z", "gamma_z", "beta_z"])
    assert_matches_ort(m, {"ids": RNG.integers(0, V, (B, S)).astype(np.int32),
                           "segs": RNG.integers(0, 2, (B, S)).astype(np.int32),
                           "mask": np.array([[1, 1, 1, 0, 0], [1] * 5], np.int32)})


@pytest.mark.parametrize("activation,attrs", [("Relu", {}), ("LeakyRelu", {"activation_alpha": 0.3}),
                                              ("Sigmoid", {"transB": 1, "alpha": 0.5}),
                                              ("Tanh", {"beta": 2.0})])
def test_fused_gemm(activation, attrs):
    wshape = [6, 4] if attrs.get("transB") else [4, 6]
    m = contrib_model("FusedGemm", {"a": (F32, [3, 4])}, {"y": (F32, None)},
                      {"activation": activation, **attrs},
                      inits={"w": _f(*wshape), "c": _f(6)})
    assert_matches_ort(m, {"a": _f(3, 4)})


@pytest.mark.parametrize("case", ["attention", "mha", "gqa", "lstm"])
def test_contrib_helpers_script_and_trace(case):
    """The generated module is a PyTorch program: TorchScript compiles it, tracing records it."""
    import warnings

    import nnport
    import torch

    m, feeds = {"attention": lambda: _attention_case("raw2d", 1, True),
                "mha": lambda: _mha_case("separate", True, True),
                "gqa": lambda: _gqa_case(2, 1, 4, rotary=True),
                "lstm": lambda: _dq_lstm_case("bidirectional", False, True)}[case]()
    module = nnport.to_torch(m)
    args = [torch.from_numpy(feeds[i.name]) for i in m.graph.input]
    with torch.no_grad(), warnings.catch_warnings():
        # data-dependent lengths (KV cache, sequence lengths) are constants of the trace
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        ref = module(*args)
        for compiled in (torch.jit.script(module), torch.jit.trace(module, tuple(args))):
            for a, b in zip(compiled(*args), ref):
                torch.testing.assert_close(a, b)


def test_unsupported_variant_is_one_clear_line(tmp_path):
    """A contrib variant nnport does not convert (a quantized KV cache) is refused with one line
    naming the node and what is missing, exit 2, and no output file."""
    import onnx

    from util import assert_clean_error, run_cli

    m, _ = _gqa_case(1, 1, 4)
    node = m.graph.node[0]
    node.name = "layers.0.attn"
    node.attribute.append(helper.make_attribute("k_quant_type", "PER_TENSOR"))
    p = tmp_path / "gqa.onnx"
    onnx.save(m, p)
    rc, out, err = run_cli("convert", p, tmp_path / "gqa.py")
    assert_clean_error(rc, out, err, "layers.0.attn", "GroupQueryAttention",
                       "quantized KV cache")
    assert not (tmp_path / "gqa.py").exists()


def test_every_contrib_op_matches_an_onnxruntime_schema():
    """Each com.microsoft emitter names an op the installed onnxruntime defines, at a version
    that was reviewed: a new onnxruntime version of an op fails here, not silently."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    from nnport.torch_emit import REGISTRY

    schemas = {(s.domain, s.name): s.since_version for s in ort_c.get_all_operator_schema()}
    registered = [(d, op) for (d, op) in REGISTRY.ops() if d == MS]
    assert len(registered) >= 31
    for d, op in registered:
        assert (d, op) in schemas, f"{op}: onnxruntime defines no such contrib op"
        assert schemas[(d, op)] in REGISTRY.reviewed_versions(d, op), op
    # onnxruntime's own default-domain op
    assert schemas[("", "SimplifiedLayerNormalization")] in REGISTRY.reviewed_versions(
        "", "SimplifiedLayerNormalization")


@pytest.mark.parametrize("op,attr", [("MultiHeadAttention", "num_heads"),
                                     ("QLinearConcat", "axis"), ("FusedConv", "pads"),
                                     ("QuickGelu", "alpha")])
def test_mistyped_contrib_attribute_is_refused(op, attr, tmp_path):
    """onnx's checker does not know contrib schemas: code in a string where a number belongs
    never reaches the generated source."""
    import nnport

    marker = tmp_path / "pwned"
    evil = f"1)\nopen({str(marker)!r}, 'w')#"
    node = helper.make_node(op, ["x"], ["y"], domain=MS)
    node.attribute.append(helper.make_attribute(attr, [evil] if attr == "pads" else evil))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F32, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", F32, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid(MS, 1)])
    with pytest.raises(nnport.NnportError, match="wrong type"):
        generate_torch(m)
    assert not marker.exists()
