"""Rank-5 (N, C, D, H, W) tensors with a batch other than 1, held in ncnn as one blob of N*C
channels (ncnn_emit/merged.py): element-wise, per-channel and per-sample ops run on it
exactly; other ops are refused by node name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from .models import ncnn_matches, onnx_matches  # noqa: E402


class Video(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm3d(3)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 1.5)
        self.bn.weight.data.uniform_(0.5, 1.5)
        self.conv = nn.Conv3d(3, 4, 3, padding=(1, 0, 1), stride=(1, 2, 1))
        self.dw = nn.Conv3d(4, 4, 3, padding=1, groups=4)
        self.up = nn.ConvTranspose3d(4, 2, 2, stride=2)
        self.inorm = nn.InstanceNorm3d(4, affine=True)
        self.inorm.weight.data.uniform_(0.5, 1.5)
        self.inorm.bias.data.uniform_(-0.5, 0.5)
        self.gnorm = nn.GroupNorm(2, 4)
        self.k = nn.Parameter(torch.rand(4, 1, 1, 1) + 0.5)

    def forward(self, x):
        b = F.dropout3d(self.bn(x), training=False)
        a = F.max_pool3d(b, 2, ceil_mode=True)
        p = F.avg_pool3d(x, 3, stride=2, padding=1)
        c = F.relu(self.conv(b))
        d = F.hardswish(self.inorm(self.dw(c)))
        d = d * torch.sigmoid(F.adaptive_avg_pool3d(d, 1)) * self.k - 0.25  # SE gate
        e = F.pad(d, (1, 2, 0, 1, 2, 0), value=0.5)
        f = F.pad(d, (1, 0, 2, 1, 0, 2), mode="replicate")
        g = self.up(self.gnorm(d) + d)
        return a, p, e, f, g, F.adaptive_max_pool3d(c, 1)


def test_video_ops_on_a_batch_of_two(tmp_path):
    from nnport.ncnn_emit.runner import NcnnRunner

    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 9, 10)
    text = ncnn_matches(tmp_path, Video(), (x,), layers=[
        "BatchNorm", "Pooling3D", "Convolution3D", "ConvolutionDepthWise3D", "Deconvolution3D",
        "InstanceNorm", "Padding"])
    assert "nnport_input_m2_in0" in text
    bn = next(ln for ln in text.splitlines() if ln.startswith("BatchNorm "))
    assert " 0=6 " in bn + " "  # N*C channels: the statistics repeated per sample
    got = NcnnRunner(tmp_path / "m.param").run({"in0": x.numpy()})
    with torch.no_grad():
        want = Video().eval()(x)
    assert [g.shape for g in got] == [tuple(w.shape) for w in want]  # read back as (N, C, ...)


def test_batch_of_two_against_onnxruntime(tmp_path):
    """Pad with edge mode and explicit zero N/C pads, constants of (C,1,1,1), (1,1,D,H,W) and
    (N,C,1,1,1) shapes, a Sum of three, an element-wise tail; onnxruntime is the reference."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 4, 5, 6)).astype(np.float32)
    kc = numpy_helper.from_array(rng.standard_normal((2, 1, 1, 1)).astype(np.float32), "kc")
    ks = numpy_helper.from_array(rng.standard_normal((1, 1, 4, 5, 6)).astype(np.float32), "ks")
    kn = numpy_helper.from_array(rng.standard_normal((3, 2, 1, 1, 1)).astype(np.float32), "kn")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 0, 2, 0, 0, 2, 1, 1], np.int64), "pads")
    nodes = [helper.make_node("Sub", ["kc", "x"], ["a"]),
             helper.make_node("Div", ["a", "ks"], ["b"]),
             helper.make_node("Mul", ["kn", "b"], ["c"]),
             helper.make_node("Sum", ["a", "b", "c"], ["s"]),
             helper.make_node("Tanh", ["s"], ["t"]),
             helper.make_node("Pad", ["t", "pads"], ["y"], mode="edge")]
    text = onnx_matches(tmp_path, nodes, {"x": x}, inits=[kc, ks, kn, pads],
                        layers=["Padding", "Eltwise", "BinaryOp"])
    assert "nnport_output_0_m3" in text


def test_group_normalization_and_reshape_of_a_batch_of_two(tmp_path):
    """ONNX GroupNormalization (opset 21: per-channel scale) runs per sample; a Reshape out of
    and back into the merged layout keeps the bytes."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 5, 6)).astype(np.float32)
    sc = numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "sc")
    bi = numpy_helper.from_array(rng.uniform(-0.5, 0.5, 4).astype(np.float32), "bi")
    s1 = numpy_helper.from_array(np.array([2, 8, 45], np.int64), "s1")
    s2 = numpy_helper.from_array(np.array([2, 4, 3, 5, 6], np.int64), "s2")
    nodes = [helper.make_node("GroupNormalization", ["x", "sc", "bi"], ["g"], num_groups=2),
             helper.make_node("Reshape", ["g", "s1"], ["r"]),
             helper.make_node("Relu", ["r"], ["q"]),
             helper.make_node("Reshape", ["q", "s2"], ["y"])]
    onnx_matches(tmp_path, nodes, {"x": x}, inits=[sc, bi, s1, s2], layers=["GroupNorm"],
                 opset=21)


def _refused(tmp_path, nodes, shapes, inits=(), match=()):
    import onnx

    from nnport.convert import convert
    from nnport.errors import ConversionError

    ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in shapes.items()]
    outs = [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, "g", ins, outs, list(inits))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
              tmp_path / "m.onnx")
    with pytest.raises(ConversionError) as e:
        convert(tmp_path / "m.onnx", tmp_path / "m.param", verify=False)
    msg = str(e.value)
    assert "\n" not in msg
    for w in match:
        assert w in msg, msg
    assert not (tmp_path / "m.param").exists()


def test_ops_not_exact_on_the_merged_layout_are_refused_by_name(tmp_path):
    _refused(tmp_path, [helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("Softmax", ["r"], ["y"], axis=1, name="the_softmax")],
             {"x": (2, 3, 4, 5, 6)}, match=("the_softmax", "Softmax", "batch of 2", "N*C"))


def test_pad_of_the_channels_of_a_merged_batch_is_refused(tmp_path):
    pads = numpy_helper.from_array(np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0], np.int64), "pads")
    _refused(tmp_path, [helper.make_node("Pad", ["x", "pads"], ["y"], name="chan_pad")],
             {"x": (2, 3, 4, 5, 6)}, inits=[pads], match=("chan_pad", "channel axis", "batch of 2"))


def test_broadcast_against_a_different_channel_count_is_refused(tmp_path):
    """(N, 1, D, H, W) against (N, C, D, H, W): the merged channels do not line up."""
    nodes = [helper.make_node("Sub", ["x", "m"], ["y"], name="the_sub")]
    _refused(tmp_path, nodes, {"x": (2, 3, 4, 5, 6), "m": (2, 1, 4, 5, 6)},
             match=("the_sub", "'m'", "batch of 2"))


class Stacks(nn.Module):
    """torch.stack of 4-D batches of two into rank-5 results held merged, and Concat of merged
    video tensors on every axis (on C, sample by sample)."""

    def forward(self, q, r, v, u):
        return (torch.relu(torch.stack((q, r), dim=1)), torch.relu(torch.stack((q, r), dim=-1)),
                torch.relu(torch.stack((q, r), dim=0)), torch.cat((v, u), dim=1).relu(),
                torch.cat((v, v * 2), dim=3).relu(), torch.cat((v, v), dim=0).relu())


def test_concat_on_a_merged_batch(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(2, 3, 5, 7), torch.rand(2, 3, 5, 7), torch.rand(2, 3, 4, 5, 6),
            torch.rand(2, 2, 4, 5, 6))
    ncnn_matches(tmp_path, Stacks(), args, layers=["Concat", "Crop"], dynamo=True)


def test_concat_of_a_merged_batch_with_a_constant_is_refused(tmp_path):
    c = numpy_helper.from_array(np.ones((2, 1, 4, 5, 6), np.float32), "c")
    _refused(tmp_path, [helper.make_node("Concat", ["x", "c"], ["y"], axis=1, name="the_cat")],
             {"x": (2, 3, 4, 5, 6)}, inits=[c], match=("the_cat", "batch of 2"))


def test_slices_and_reductions_on_d_h_w_of_a_merged_batch(tmp_path):
    """Slice (also from the end, with a step) and Reduce* keeping the rank, on D, H and W of a
    batch of two: every channel cut or reduced alike (Crop, Reduction on ncnn's d, h, w)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 6, 7)).astype(np.float32)

    def i64(name, v):
        return numpy_helper.from_array(np.array(v, np.int64), name)

    inits = [i64("st", [1, 0, 2]), i64("en", [4, 5, 7]), i64("ax", [2, 3, 4]),
             i64("st2", [-3]), i64("en2", [100]), i64("ax2", [4]), i64("st3", [0]),
             i64("en3", [3]), i64("stp", [2]), i64("rax", [2, 4]), i64("rax2", [3]),
             i64("rax3", [2])]
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax"], ["a"]),      # (2,3,3,5,5)
             helper.make_node("ReduceMax", ["a", "rax"], ["r"], keepdims=1),  # (2,3,1,5,1)
             helper.make_node("Sub", ["a", "r"], ["s"]),
             helper.make_node("Slice", ["s", "st2", "en2", "ax2"], ["b"]),   # (2,3,3,5,3)
             helper.make_node("ReduceMean", ["b", "rax2"], ["m"], keepdims=1),  # (2,3,3,1,3)
             helper.make_node("Slice", ["m", "st3", "en3", "ax2", "stp"], ["c"]),  # (...,2)
             helper.make_node("ReduceSum", ["c", "rax3"], ["d"], keepdims=1),  # (2,3,1,1,2)
             helper.make_node("Concat", ["d", "d"], ["y"], axis=3)]
    text = onnx_matches(tmp_path, nodes, {"x": x}, inits=inits, layers=["Crop", "Reduction"],
                        opset=18)
    assert "nnport_output_0_m2" in text


def test_slice_of_the_channels_of_a_merged_batch_is_refused(tmp_path):
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("st", [1]), ("en", [2]), ("ax", [1]))]
    _refused(tmp_path, [helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"],
                                         name="chan_slice")],
             {"x": (2, 3, 4, 5, 6)}, inits=inits, match=("chan_slice", "channel axis"))
