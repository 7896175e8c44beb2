"""Plain-torch models -> ONNX -> ncnn .param/.bin, run in the real ncnn package and compared
with onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ncnn")

from nnport.convert import convert  # noqa: E402
from nnport.verify import verify  # noqa: E402

from .models import CNN, Encoder, Recurrent, check_blob_shapes, export  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _check(report, rtol):
    assert report.outputs
    for o in report.outputs:
        assert o.ok, str(o)
        assert o.max_rel_err <= rtol or o.max_abs_err <= rtol, str(o)


@pytest.mark.parametrize("fp16", [False, True])
def test_cnn(tmp_path, fp16):
    src = export(CNN(), (torch.randn(1, 3, 32, 32),), tmp_path / "cnn.onnx")
    res = convert(src, tmp_path / "cnn.param", fp16=fp16, rtol=1e-2 if fp16 else 1e-3,
                  atol=1e-2 if fp16 else 1e-4)
    _check(res.report, 1e-2 if fp16 else 1e-3)
    check_blob_shapes(src, tmp_path / "cnn.param", {"input": np.ones((1, 3, 32, 32), np.float32)})
    text = (tmp_path / "cnn.param").read_text()
    assert text.startswith("7767517\n")
    for layer in ("Convolution", "ConvolutionDepthWise", "Pooling", "Interp", "Concat",
                  "InnerProduct", "BinaryOp"):
        assert f"\n{layer} " in text
    assert "BatchNorm" not in text  # folded into the convolutions
    assert " input " in text and " output " in text  # blob names are the ONNX names
    size = (tmp_path / "cnn.bin").stat().st_size
    n_params = sum(p.numel() for p in CNN().parameters())
    assert size < n_params * 4 * (0.6 if fp16 else 1.2)


def test_transformer_encoder(tmp_path):
    src = export(Encoder(), (torch.randn(1, 6, 32),), tmp_path / "enc.onnx")
    res = convert(src, tmp_path / "enc.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    check_blob_shapes(src, tmp_path / "enc.param", {"input": np.ones((1, 6, 32), np.float32)})
    text = (tmp_path / "enc.param").read_text()
    for layer in ("LayerNorm", "GELU", "SDPA", "Permute", "Gemm"):
        assert f"\n{layer} " in text


def test_lstm_gru(tmp_path):
    src = export(Recurrent(), (torch.randn(1, 5, 8),), tmp_path / "rnn.onnx")
    res = convert(src, tmp_path / "rnn.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    check_blob_shapes(src, tmp_path / "rnn.param", {"input": np.ones((1, 5, 8), np.float32)})
    text = (tmp_path / "rnn.param").read_text()
    assert "\nLSTM " in text and "\nGRU " in text


def test_dynamic_hw_runs_at_another_size(tmp_path):
    src = export(CNN(), (torch.randn(1, 3, 32, 32),), tmp_path / "dyn.onnx",
                 dynamic_axes={"input": {2: "h", 3: "w"}})
    res = convert(src, tmp_path / "dyn.param", input_shapes={"input": (1, 3, 32, 32)})
    assert res.ok
    rep = verify(src, tmp_path / "dyn.param", input_shapes={"input": (1, 3, 64, 48)},
                 rtol=1e-3, atol=1e-4)
    assert rep.ok, rep.lines()
    assert rep.inputs["input"]["shape"] == [1, 3, 64, 48]


def test_runner_against_onnxruntime_directly(tmp_path):
    import onnxruntime as ort

    from nnport.ncnn_emit.runner import NcnnRunner

    src = export(CNN(), (torch.randn(1, 3, 16, 16),), tmp_path / "c.onnx")
    convert(src, tmp_path / "c.param", verify=False)
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None,
                                                                                {"input": x})
    got = NcnnRunner(tmp_path / "c.param").run({"input": x})
    assert got[0].shape == ref[0].shape
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-3, atol=1e-4)


def test_large_model_through_a_symlink(tmp_path):
    """Over 1 MB the loader keeps weights as references into the file: the shape probe must
    still see them, and a symlinked model must resolve them in the real file's folder."""
    import os

    real = tmp_path / "real"
    real.mkdir()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(64 * 8 * 8, 100))
    src = export(net, (torch.randn(1, 3, 8, 8),), real / "big.onnx")
    assert src.stat().st_size > 1 << 20
    link_dir = tmp_path / "elsewhere"
    link_dir.mkdir()
    os.symlink(src, link_dir / "big.onnx")
    res = convert(link_dir / "big.onnx", tmp_path / "big.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    res = convert(link_dir / "big.onnx", tmp_path / "big.py")
    assert res.ok


@pytest.mark.parametrize("gather", [False, True])
def test_qkv_unbind_attention(tmp_path, gather):
    from .models import QKVAttention

    src = export(QKVAttention(gather=gather), (torch.randn(1, 10, 32),), tmp_path / "a.onnx")
    res = convert(src, tmp_path / "a.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    text = (tmp_path / "a.param").read_text()
    assert "\nSDPA " in text and "\nSoftmax " not in text  # attention is one ncnn layer


def test_window_and_grid_partitions(tmp_path):
    from .models import Windows

    src = export(Windows(), (torch.randn(1, 8, 8, 16),), tmp_path / "w.onnx")
    res = convert(src, tmp_path / "w.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    text = (tmp_path / "w.param").read_text()
    assert "\nPermute " in text


def test_tokens_as_batch_and_strided_slice(tmp_path):
    from .models import TokensAsBatch

    src = export(TokensAsBatch(), (torch.randn(1, 6, 7, 16),), tmp_path / "t.onnx")
    res = convert(src, tmp_path / "t.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    text = (tmp_path / "t.param").read_text()
    assert "\nPooling " in text  # the ::2 steps


def test_convolution_on_windows_as_batch(tmp_path):
    """Windows moved into axis 0 are a batch of 4: the convolution runs per window."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):  # (1, 3, 8, 8) -> four 4x4 windows as a batch of 4
            w = x.reshape(3, 2, 4, 2, 4).permute(1, 3, 0, 2, 4).reshape(4, 3, 4, 4)
            return self.conv(w)

    src = export(M(), (torch.randn(1, 3, 8, 8),), tmp_path / "c.onnx")
    res = convert(src, tmp_path / "c.param")
    _check(res.report, 1e-3)
    assert "\nConcat " in (tmp_path / "c.param").read_text()


@pytest.mark.parametrize("rank", [3, 4, 5, 6])
def test_permute_steps_match_numpy(rank):
    """Every permutation of up to 6 axes splits into steps of at most 4 merged groups, and
    doing those steps with reshape/transpose gives numpy's transpose."""
    import itertools

    from nnport.ncnn_emit.legalize.rewrite import permute_steps

    rng = np.random.default_rng(rank)
    sizes = [2, 3, 1, 4, 5, 2][:rank]
    x = rng.standard_normal(sizes)
    perms = list(itertools.permutations(range(rank)))
    for perm in (perms if rank < 6 else [perms[i] for i in rng.choice(len(perms), 60)]):
        steps = permute_steps(sizes, list(perm))
        assert steps is not None, perm
        cur = x
        for shape, order in steps:
            assert len(shape) <= 4 and sorted(order) == list(range(len(shape)))
            cur = cur.reshape(shape).transpose(order)
        np.testing.assert_array_equal(cur.reshape(np.transpose(x, perm).shape),
                                      np.transpose(x, perm))


def test_decomposed_layernorm_and_hardswish(tmp_path):
    """Exports before opset 17 spell LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div, and before
    opset 14 HardSwish as x * HardSigmoid(x); both become one ncnn layer."""

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = torch.nn.LayerNorm(16)
            self.ln.weight.data.uniform_(0.5, 1.5)
            self.ln.bias.data.uniform_(-0.5, 0.5)
            self.fc = torch.nn.Linear(16, 16)

        def forward(self, x):
            y = self.fc(self.ln(x))
            return F.hardswish(y) + y * F.relu6(y + 3) / 6

    import torch.nn.functional as F

    src = export(M(), (torch.randn(1, 5, 16),), tmp_path / "m.onnx", opset=13)
    res = convert(src, tmp_path / "m.param", rtol=1e-3, atol=1e-4)
    _check(res.report, 1e-3)
    text = (tmp_path / "m.param").read_text()
    assert "\nLayerNorm " in text and "Reduction" not in text
    assert text.count("\nHardSwish ") == 2 and "HardSigmoid" not in text and "Clip" not in text


def test_tile_and_rank_broadcast(tmp_path):
    class M(torch.nn.Module):
        def forward(self, x, y):
            a = torch.softmax(x, -1) * x[0, 0]  # (1, H, N, N) * (N, N)
            return a.repeat(1, 2, 1, 3), x[:, 0] * y  # Tile; (1, N, N) * (1, N)

    src = export(M(), (torch.randn(1, 2, 5, 5), torch.randn(1, 5)), tmp_path / "t.onnx",
                 input_names=("x", "y"))
    res = convert(src, tmp_path / "t.param", rtol=1e-4, atol=1e-5)
    _check(res.report, 1e-4)
    assert "\nTile " in (tmp_path / "t.param").read_text()


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_back(tmp_path, mode):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 3, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 10])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, 3, 5])
    g = helper.make_graph([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode),
                           helper.make_node("SpaceToDepth", ["y"], ["z"], blocksize=2)],
                          "g", [x], [y, z])
    src = tmp_path / "d.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), src)
    res = convert(src, tmp_path / "d.param", rtol=0, atol=0)
    _check(res.report, 0)
    text = (tmp_path / "d.param").read_text()
    assert "\nPixelShuffle " in text and "\nReorg " in text
