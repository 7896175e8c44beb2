"""Conv/ConvTranspose -> Convolution*/Deconvolution*: batches other than 1 run sample by
sample (ncnn's convolutions take one (C, spatial...) sample)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


@pytest.mark.parametrize("shape,conv", [
    ((2, 3, 11, 13), nn.Conv2d(3, 8, 3, padding=1)),
    ((3, 4, 20), nn.Conv1d(4, 6, 3, stride=2)),
    ((2, 6, 9, 7), nn.ConvTranspose2d(6, 4, 3, stride=2)),
])
def test_conv_on_a_batch_of_several(tmp_path, shape, conv):
    torch.manual_seed(0)
    ncnn_matches(tmp_path, conv, (torch.rand(*shape),), layers=["Concat"])


def test_depth_to_space_on_a_batch_of_two(tmp_path):
    ncnn_matches(tmp_path, nn.PixelShuffle(2), (torch.rand(2, 8, 3, 5),),
                 layers=["PixelShuffle"])


class DynamicWeights(nn.Module):
    """Weights as graph inputs: Convolution*/Deconvolution* with dynamic_weight=1."""

    def forward(self, x, w0, w1, b1, wt, q, w1d):
        import torch.nn.functional as F

        a = F.conv2d(x, w0, None, stride=2, padding=1)
        a = F.conv2d(a, w1, b1, padding=1, dilation=(2, 1), groups=2)
        t = F.conv_transpose2d(x, wt, None, stride=2, padding=1, output_padding=1)
        c = F.conv1d(q, w1d, None, padding=1)
        return a, t, c


def test_weights_computed_at_run_time(tmp_path):
    torch.manual_seed(0)
    args = (torch.rand(1, 12, 13, 11), torch.rand(16, 12, 3, 3), torch.rand(16, 8, 5, 5),
            torch.rand(16), torch.rand(12, 6, 4, 4), torch.rand(2, 6, 9), torch.rand(5, 6, 3))
    ncnn_matches(tmp_path, DynamicWeights(), args, layers=["Convolution", "Deconvolution"],
                 rtol=1e-3, atol=1e-3)


class Folds(nn.Module):
    def forward(self, x, y, q):
        import torch.nn.functional as F

        return (F.fold(x, output_size=22, kernel_size=3),
                F.fold(y, output_size=(5, 11), kernel_size=(2, 3), padding=2,
                       dilation=(1, 2)),
                F.fold(q, output_size=(9, 8), kernel_size=(2, 4), stride=(2, 1), padding=2))


def test_col2im_is_fold(tmp_path):
    # symmetric pads only: torch's TorchScript exporter writes Col2Im pads as [h, h, w, w]
    # where ONNX reads [h_begin, w_begin, h_end, w_end]
    torch.manual_seed(0)
    ncnn_matches(tmp_path, Folds(), (torch.rand(1, 108, 400), torch.rand(1, 36, 88),
                                     torch.rand(2, 24, 54)), layers=["Fold"], opset=18)


def _deform_conv_model(rng, *, mask, bias, stride, pads, dil, group=1, batch=1):
    """One DeformConv node (opset 19) on a (batch, 4, 9, 10) image, 3x2 kernel, offsets and
    mask as graph inputs; returns (model, feeds)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    kh, kw, h, w = 3, 2, 9, 10
    oh = (h + pads[0] + pads[2] - dil * (kh - 1) - 1) // stride + 1
    ow = (w + pads[1] + pads[3] - dil * (kw - 1) - 1) // stride + 1
    inits = [numpy_helper.from_array(
        rng.standard_normal((6, 4 // group, kh, kw)).astype(np.float32), "W")]
    feeds = {"x": rng.standard_normal((batch, 4, h, w)).astype(np.float32),
             # offsets of up to 3 pixels: taps fall between pixels and off the image
             "off": (3 * rng.standard_normal((batch, 2 * kh * kw, oh, ow))).astype(np.float32)}
    ins = ["x", "W", "off", ""]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "B"))
        ins[3] = "B"
    if mask:
        feeds["m"] = rng.random((batch, kh * kw, oh, ow)).astype(np.float32)
        ins.append("m")
    node = helper.make_node("DeformConv", ins, ["y"], name="dcn", strides=[stride] * 2,
                            pads=pads, dilations=[dil] * 2, group=group)
    vi = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
          for k, v in feeds.items()]
    g = helper.make_graph([node], "g", vi,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]), feeds


@pytest.mark.parametrize("mask,bias,stride,pads,dil", [
    (False, False, 1, [1, 1, 1, 1], 1),
    (True, True, 2, [1, 0, 2, 1], 1),
    (True, False, 1, [2, 2, 2, 2], 2),
    (False, True, 2, [0, 0, 0, 0], 1),
])
def test_deform_conv_is_deformable_conv2d(tmp_path, mask, bias, stride, pads, dil):
    """DeformConv -> DeformableConv2D, compared with onnxruntime's DeformConv kernel."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from nnport.convert import convert
    from nnport.ncnn_emit.runner import NcnnRunner

    model, feeds = _deform_conv_model(np.random.default_rng(3), mask=mask, bias=bias,
                                      stride=stride, pads=pads, dil=dil)
    onnx.save(model, tmp_path / "dcn.onnx")
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    convert(tmp_path / "dcn.onnx", tmp_path / "dcn.param", verify=False)
    text = (tmp_path / "dcn.param").read_text()
    assert "DeformableConv2D" in text
    got = NcnnRunner(tmp_path / "dcn.param").run(feeds)[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw,why", [({"group": 2}, "group=2"),
                                    ({"batch": 2}, "batch of 2")])
def test_deform_conv_ncnn_cannot_run_says_so(tmp_path, kw, why):
    import numpy as np
    import onnx

    from nnport.convert import convert
    from nnport.errors import NnportError

    model, _ = _deform_conv_model(np.random.default_rng(0), mask=True, bias=False, stride=1,
                                  pads=[1, 1, 1, 1], dil=1, **kw)
    onnx.save(model, tmp_path / "dcn.onnx")
    with pytest.raises(NnportError, match=why) as err:
        convert(tmp_path / "dcn.onnx", tmp_path / "out" / "dcn.param", verify=False)
    assert "dcn" in str(err.value)
    assert not (tmp_path / "out" / "dcn.param").exists()


class Unfolds(nn.Module):
    def __init__(self, specs):
        super().__init__()
        self.specs = specs

    def forward(self, x):
        import torch.nn.functional as F

        return tuple(F.unfold(x, **kw) for kw in self.specs)


@pytest.mark.parametrize("shape,specs", [
    ((1, 12, 16, 16), [dict(kernel_size=3),
                       dict(kernel_size=(2, 4), stride=(2, 1), padding=2),
                       dict(kernel_size=(1, 3), padding=(2, 4), dilation=(1, 2))]),
    ((3, 2, 9, 13), [dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1)),
                     dict(kernel_size=1)]),
    ((2, 5, 7, 5), [dict(kernel_size=(7, 1)), dict(kernel_size=2, stride=2, padding=1)]),
])
def test_unfold_is_ncnn_unfold(tmp_path, shape, specs):
    """torch's dynamo export writes F.unfold as Pad and two gathers building a rank-6 value:
    one ncnn Unfold (per sample on a batch of several)."""
    torch.manual_seed(0)
    text = ncnn_matches(tmp_path, Unfolds(specs), (torch.rand(*shape),), layers=["Unfold"],
                        dynamo=True, rtol=0, atol=0)
    types = [ln.split()[0] for ln in text.splitlines()[2:]]
    assert types.count("Unfold") == len(specs) * (1 if shape[0] == 1 else shape[0])
    assert "Permute" not in types  # no rank-6 transpose left


def _gathers(rows, cols, pads, value):
    """Pad -> Gather(H, rows) -> Gather(W, cols) -> Transpose -> Reshape, as the dynamo export
    of F.unfold writes it, with any indices and pad value."""
    import numpy as np
    from onnx import helper, numpy_helper

    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    n_out = rows.size * cols.size // (rows.shape[1] * cols.shape[1])
    inits = [numpy_helper.from_array(np.asarray(pads, np.int64), "pads"),
             numpy_helper.from_array(np.asarray(value, np.float32), "value"),
             numpy_helper.from_array(rows, "rows"), numpy_helper.from_array(cols, "cols"),
             numpy_helper.from_array(np.asarray([1, 3 * n_out, -1], np.int64), "shape")]
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["p"], name="pad"),
             helper.make_node("Gather", ["p", "rows"], ["g1"], axis=2, name="g_rows"),
             helper.make_node("Gather", ["g1", "cols"], ["g2"], axis=4, name="g_cols"),
             helper.make_node("Transpose", ["g2"], ["t"], perm=[0, 1, 2, 4, 3, 5], name="t"),
             helper.make_node("Reshape", ["t", "shape"], ["y"], name="r")]
    return nodes, inits


def test_unfold_pad_value_and_a_gather_that_is_not_one(tmp_path):
    import numpy as np

    from nnport.errors import ConversionError

    from .models import onnx_matches

    x = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 9)).astype(np.float32)}
    rows = [[0, 2, 4, 6], [1, 3, 5, 7]]  # kh=2, stride 2, dilation 1
    cols = [[0, 1, 2, 3, 4, 5, 6, 7], [3, 4, 5, 6, 7, 8, 9, 10]]  # kw=2, dilation 3
    nodes, inits = _gathers(rows, cols, [0, 0, 1, 1, 0, 0, 0, 1], 1.5)
    text = onnx_matches(tmp_path, nodes, x, inits, layers=["Unfold"], rtol=0, atol=0)
    assert "18=1.5" in text
    # an index that does not start at 0 is a crop and an unfold: not claimed, the rank-6
    # gather is refused by name
    nodes, inits = _gathers([[1, 3, 5, 7], [2, 4, 6, 8]], cols, [0, 0, 1, 1, 0, 0, 0, 1], 0.0)
    with pytest.raises(ConversionError, match="'g_cols' \\(Gather\\)"):
        onnx_matches(tmp_path, nodes, x, inits)
