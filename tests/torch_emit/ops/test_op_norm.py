"""Normalization / Dropout emitters against onnxruntime, plus readable output."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from nnport.convert import generate_torch
from util import F32, assert_matches_ort, one_node_model

rng = np.random.default_rng(0)


def _x(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _bn_inits(c):
    return {"bn.weight": _x(c), "bn.bias": _x(c), "bn.mean": _x(c),
            "bn.var": rng.uniform(0.5, 2, c).astype(np.float32)}


def test_batchnorm_const_is_module():
    m = one_node_model("BatchNormalization", {"x": (F32, [2, 4, 5, 5])}, {"y": (F32, None)},
                       {"epsilon": 1e-3}, inits=_bn_inits(4), opset=15)
    src = generate_torch(m)[0]
    assert "nn.BatchNorm2d(4, eps=0.001)" in src
    assert_matches_ort(m, {"x": _x(2, 4, 5, 5)}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 9])
def test_batchnorm_old_opsets(opset):
    attrs = {}
    m = one_node_model("BatchNormalization", {"x": (F32, [2, 3, 4])}, {"y": (F32, None)},
                       attrs, inits=_bn_inits(3), opset=opset)
    assert_matches_ort(m, {"x": _x(2, 3, 4)}, rtol=1e-5, atol=1e-5)


def test_batchnorm_dynamic_params():
    names = ["s", "b", "m", "v"]
    m = one_node_model("BatchNormalization",
                       {"x": (F32, ["N", 3, "H", "W"]), **{n: (F32, [3]) for n in names}},
                       {"y": (F32, None)}, opset=15)
    assert "F.batch_norm(" in generate_torch(m)[0]
    feeds = {"x": _x(2, 3, 4, 5), "s": _x(3), "b": _x(3), "m": _x(3),
             "v": rng.uniform(0.5, 2, 3).astype(np.float32)}
    assert_matches_ort(m, feeds, rtol=1e-5, atol=1e-5)


def test_instance_norm():
    m = one_node_model("InstanceNormalization", {"x": (F32, [2, 3, 6])}, {"y": (F32, None)},
                       inits={"s": _x(3), "b": _x(3)})
    assert "nn.InstanceNorm1d(3, affine=True)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": _x(2, 3, 6)}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_norm_const(opset):
    c = 2 if opset == 18 else 6  # opset 18: scale/bias per group, 21: per channel
    m = one_node_model("GroupNormalization", {"x": (F32, [2, 6, 3, 3])}, {"y": (F32, None)},
                       {"num_groups": 2, "epsilon": 1e-4}, inits={"s": _x(c), "b": _x(c)},
                       opset=opset)
    assert "nn.GroupNorm(2, 6, eps=0.0001)" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": _x(2, 6, 3, 3)}, rtol=1e-4, atol=1e-4)


def test_group_norm_18_dynamic():
    m = one_node_model("GroupNormalization",
                       {"x": (F32, [2, 6, 4]), "s": (F32, [3]), "b": (F32, [3])},
                       {"y": (F32, None)}, {"num_groups": 3}, opset=18)
    assert_matches_ort(m, {"x": _x(2, 6, 4), "s": _x(3), "b": _x(3)}, rtol=1e-4, atol=1e-4)


def test_layer_norm_const_is_module():
    m = one_node_model("LayerNormalization", {"x": (F32, ["N", 5, 8])}, {"y": (F32, None)},
                       inits={"ln.weight": _x(8), "ln.bias": _x(8)})
    src = generate_torch(m)[0]
    assert "nn.LayerNorm(8)" in src
    assert_matches_ort(m, {"x": _x(3, 5, 8)}, rtol=1e-4, atol=1e-4)


def test_layer_norm_stats_outputs():
    m = one_node_model("LayerNormalization", {"x": (F32, [3, 4, 5])},
                       {"y": (F32, None), "mean": (F32, None), "inv": (F32, None)},
                       {"axis": 1}, inits={"s": _x(4, 5), "b": _x(4, 5)})
    assert_matches_ort(m, {"x": _x(3, 4, 5)}, rtol=1e-4, atol=1e-4)


def test_layer_norm_dynamic_scale():
    m = one_node_model("LayerNormalization", {"x": (F32, ["N", "T", 6]), "s": (F32, [6])},
                       {"y": (F32, None)}, {"axis": -1})
    assert "F.layer_norm(" in generate_torch(m)[0]
    assert_matches_ort(m, {"x": _x(2, 3, 6), "s": _x(6)}, rtol=1e-4, atol=1e-4)


def _run(m, *xs):
    import torch
    import nnport
    out = nnport.to_torch(m)(*[torch.from_numpy(x) for x in xs])
    return [o.detach().numpy() for o in out] if isinstance(out, tuple) else out.detach().numpy()


def test_batchnorm_opset6_spatial0():
    # per-activation statistics (spatial=0); onnxruntime has no kernel for opset 6
    inits = {"s": _x(3, 4), "b": _x(3, 4), "m": _x(3, 4),
             "v": rng.uniform(0.5, 2, (3, 4)).astype(np.float32)}
    m = one_node_model("BatchNormalization", {"x": (F32, [2, 3, 4])}, {"y": (F32, None)},
                       {"is_test": 1, "spatial": 0}, inits=inits, opset=6)
    x = _x(2, 3, 4)
    ref = (x - inits["m"]) / np.sqrt(inits["v"] + 1e-5) * inits["s"] + inits["b"]
    np.testing.assert_allclose(_run(m, x), ref, rtol=1e-5, atol=1e-5)


def test_lrn_even_size():
    # onnxruntime rejects even sizes; ONNX sums channels c - 1 .. c + 2 for size 4
    m = one_node_model("LRN", {"x": (F32, [1, 6, 2, 2])}, {"y": (F32, None)},
                       {"size": 4, "alpha": 0.01, "beta": 0.5, "bias": 2.0})
    x = _x(1, 6, 2, 2)
    sq = np.zeros_like(x)
    for c in range(6):
        sq[:, c] = (x[:, max(0, c - 1):min(6, c + 3)] ** 2).sum(1)
    ref = x / (2.0 + 0.01 / 4 * sq) ** 0.5
    np.testing.assert_allclose(_run(m, x), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [3, 5])
def test_lrn(size):
    m = one_node_model("LRN", {"x": (F32, [1, 6, 3, 3])}, {"y": (F32, None)},
                       {"size": size, "alpha": 0.001, "beta": 0.5, "bias": 2.0})
    assert_matches_ort(m, {"x": _x(1, 6, 3, 3)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p,axis", [(1, 1), (2, -1)])
def test_lp_normalization(p, axis):
    m = one_node_model("LpNormalization", {"x": (F32, [2, 3, 4])}, {"y": (F32, None)},
                       {"p": p, "axis": axis})
    assert_matches_ort(m, {"x": _x(2, 3, 4)}, rtol=1e-5, atol=1e-6)


def test_mvn_axes():
    m = one_node_model("MeanVarianceNormalization", {"x": (F32, [2, 3, 4, 5])},
                       {"y": (F32, None)}, {"axes": [1, 3]})
    assert_matches_ort(m, {"x": _x(2, 3, 4, 5)}, rtol=1e-4, atol=1e-5)


def test_dropout_inference_with_mask():
    m = one_node_model("Dropout", {"x": (F32, [2, 3])},
                       {"y": (F32, None), "m": (TensorProto.BOOL, None)}, opset=13)
    assert_matches_ort(m, {"x": _x(2, 3)})


@pytest.mark.parametrize("opset", [7, 10])
def test_dropout_old_mask_all_kept(opset):
    # the ONNX reference returns an all-ones mask (onnxruntime returns zeros for these opsets)
    mask_t = F32 if opset < 10 else TensorProto.BOOL
    m = one_node_model("Dropout", {"x": (F32, [2, 3])}, {"y": (F32, None), "m": (mask_t, None)},
                       {"ratio": 0.3}, opset=opset)
    x = _x(2, 3)
    y, mask = _run(m, x)
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == (np.float32 if opset < 10 else np.bool_) and mask.all()


def test_dropout_training_ratio_zero():
    m = one_node_model("Dropout", {"x": (F32, [2, 3])}, {"y": (F32, None)},
                       inits={"r": np.array(0.0, np.float32), "t": np.array(True)})
    assert_matches_ort(m, {"x": _x(2, 3)})


def test_rms_norm_dynamic_and_const():
    m = one_node_model("RMSNormalization", {"x": (F32, [2, 3, 4])}, {"y": (F32, None)},
                       {"axis": -1}, inits={"s": _x(4)}, opset=23)
    src = generate_torch(m)[0]
    assert "nn.RMSNorm(4" in src
    import torch
    import nnport
    x = _x(2, 3, 4)
    s = m.graph.initializer[0]
    from onnx import numpy_helper
    sv = numpy_helper.to_array(s)
    ref = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * sv
    got = nnport.to_torch(m)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
