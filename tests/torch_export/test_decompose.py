"""Calls torch's dynamo exporter cannot translate, rewritten exactly by nnport before export
(``nnport.torch_export.decompose``): adaptive max pooling and 3-D adaptive average pooling with
output sizes that do not divide the input, and scaled-dot-product attention on tensors that are
not all 4-D.  Every export here failed before ("no ONNX mapping" or torchlib's "only 4D query,
key, and value are supported"); now it is verified against torch in onnxruntime, the indices
output of max pooling included (integers: equal)."""
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnport.errors import ConversionError
from nnport.torch_export import check_exportable, export


class AdaptiveMax(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        k = len(self.size) if isinstance(self.size, tuple) else 1
        pool = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[k]
        values, indices = pool(x, self.size, return_indices=True)
        return values, indices, pool(x * 2 - 1, self.size)


@pytest.mark.parametrize("shape,size", [
    ((2, 12, 13), 5),                       # 1-D, a batch of two
    ((1, 3, 24, 64), (7, 6)),               # 2-D, neither axis divides
    ((2, 3, 9, 10), (4, 5)),                # one axis divides, one does not
    ((3, 10, 13), (5, 4)),                  # no batch (C, H, W)
    ((2, 3, 5, 7, 9), (3, 4, 2)),           # 3-D
])
def test_adaptive_max_pool_any_size(tmp_path, shape, size):
    torch.manual_seed(0)
    x = torch.rand(shape)
    x[..., 1] = x[..., 0]  # ties: torch reports the first maximum in the window
    dst = tmp_path / "m.onnx"
    res = export(AdaptiveMax(size), dst, inputs={"x": x})
    assert res.ok, res.report.lines()
    assert "exported with the dynamo exporter" in res.notes
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert "ReduceMax" in ops and "Concat" in ops


class AdaptiveAvg3d(nn.Module):
    def forward(self, x):
        return F.adaptive_avg_pool3d(x, (3, 7, 6)), F.adaptive_avg_pool3d(x, (5, 2, 1)), \
            nn.AdaptiveAvgPool3d((None, 4, 3))(x)


def test_adaptive_avg_pool3d_any_size(tmp_path):
    res = export(AdaptiveAvg3d(), tmp_path / "a.onnx", input_shapes={"x": (2, 4, 5, 24, 13)})
    assert res.ok, res.report.lines()


class Attention(nn.Module):
    def forward(self, q3, k3, v3, q2, k2, v2, q4, m2):
        return (F.scaled_dot_product_attention(q3, k3, v3),                # (B, L, E)
                F.scaled_dot_product_attention(q2, k2, v2, attn_mask=m2),  # (L, E)
                F.scaled_dot_product_attention(q4, k3, v3),                # 4-D query, 3-D keys
                F.scaled_dot_product_attention(q3, k3, v3, is_causal=True, scale=0.3))


def test_attention_on_tensors_of_other_ranks(tmp_path):
    torch.manual_seed(0)
    t = torch.rand
    args = {"q3": t(4, 16, 8), "k3": t(4, 7, 8), "v3": t(4, 7, 9), "q2": t(16, 8),
            "k2": t(7, 8), "v2": t(7, 9), "q4": t(2, 4, 16, 8), "m2": t(16, 7)}
    res = export(Attention(), tmp_path / "s.onnx", inputs=args)
    assert res.ok, res.report.lines()
    assert "exported with the dynamo exporter" in res.notes
    assert [list(o.shape) for o in res.report.outputs] == \
        [[4, 16, 9], [16, 9], [2, 4, 16, 9], [4, 16, 9]]


def test_pre_flight_counts_the_rewrites(capsys):
    assert check_exportable(AdaptiveMax((7, 6)), (torch.rand(1, 3, 24, 64),)) == []
    assert "every op has an ONNX mapping" in capsys.readouterr().out


def test_a_dynamic_pooled_axis_is_still_refused_by_name(tmp_path):
    """Window bounds need the size: with a dynamic H the call is left as it is, and the export
    fails with the op named, writing nothing."""
    with pytest.raises(ConversionError, match="adaptive_max_pool2d"):
        export(AdaptiveMax((7, 6)), tmp_path / "d.onnx", input_shapes={"x": (1, 3, 24, 64)},
               dynamic={"x": {2: "h"}}, exporter="dynamo")
    assert not (tmp_path / "d.onnx").exists()


def test_to_ncnn_through_nnport_route(tmp_path):
    """The user's route to ncnn, verified by nnport against onnxruntime in the real ncnn
    package: a 2-D batch of two held whole, and a 3-D batch of two held merged (N*C
    channels: Slice and ReduceMax on D, H, W)."""
    pytest.importorskip("ncnn")
    import nnport

    class Both(nn.Module):
        def forward(self, x, v):
            return F.adaptive_max_pool2d(x, (7, 6)), F.adaptive_max_pool3d(v, (3, 4, 2)), \
                F.adaptive_avg_pool3d(v, (2, 3, 4))

    torch.manual_seed(0)
    res = nnport.convert(Both(), tmp_path / "m.param",
                         inputs={"x": torch.rand(2, 3, 24, 20), "v": torch.rand(2, 3, 5, 7, 9)})
    assert res.ok, res.report.lines()
    assert (tmp_path / "m.param").exists()


class ProjectedLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.LSTM(16, 12, num_layers=2, bidirectional=True, proj_size=5)
        self.b = nn.LSTM(10, 12, num_layers=2, batch_first=True, bias=False, proj_size=4)
        self.c = nn.LSTM(4, 6, proj_size=3)
        self.plain = nn.LSTM(16, 8)

    def forward(self, x, h0, c0):
        y, (h, c) = self.a(x, (h0, c0))
        z, (h2, c2) = self.b(y.permute(1, 0, 2))
        u, _ = self.c(z[0])  # unbatched (T, C)
        return y, h, c, z, h2, c2, u, self.plain(x)[0]


def test_lstm_with_projections(tmp_path):
    """torchlib wrote a graph that shape inference rejects (a Concat of ranks 1 and 2), so the
    export failed in onnxruntime; it is written out step by step, and an LSTM without
    projections is still one ONNX LSTM node."""
    x, h0, c0 = torch.rand(7, 2, 16), torch.rand(4, 2, 5), torch.rand(4, 2, 12)
    dst = tmp_path / "l.onnx"
    res = export(ProjectedLSTM().eval(), dst, inputs={"x": x, "h0": h0, "c0": c0})
    assert res.ok, res.report.lines()
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert ops.count("LSTM") == 1


class Atan2(nn.Module):
    def forward(self, y, x):
        return torch.atan2(y, x), torch.atan2(y, x[:1])  # also broadcast


def _axes_grid():
    v = torch.tensor([0.0, 1.0, -1.0, 2.5, -3.0, 1e-30, -1e-30, 0.0])
    y, x = torch.meshgrid(v, v, indexing="ij")
    return y.contiguous(), x.contiguous()


def test_atan2_on_the_axes(tmp_path):
    """torchlib's graph gave atan2(0, -1) = -pi (torch: pi) and marked 0/0 with IsNaN; the
    rewrite has the axes as cases of their own and no IsNaN."""
    import onnxruntime as ort

    y, x = _axes_grid()
    dst = tmp_path / "a.onnx"
    res = export(Atan2(), dst, inputs={"y": y, "x": x})
    assert res.ok, res.report.lines()
    assert "IsNaN" not in {n.op_type for n in onnx.load(str(dst)).graph.node}
    got = ort.InferenceSession(str(dst)).run(None, {"y": y.numpy(), "x": x.numpy()})
    for g, w in zip(got, Atan2()(y, x)):
        torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-6, atol=1e-7)


def test_atan2_to_ncnn(tmp_path):
    pytest.importorskip("ncnn")
    import nnport
    from nnport.ncnn_emit.runner import NcnnRunner

    y, x = _axes_grid()
    res = nnport.convert(Atan2(), tmp_path / "a.param", inputs={"y": y, "x": x})
    assert res.ok, res.report.lines()
    got = NcnnRunner(tmp_path / "a.param").run({"y": y.numpy(), "x": x.numpy()})
    for g, w in zip(got, Atan2()(y, x)):
        torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-6, atol=1e-6)
