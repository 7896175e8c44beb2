"""One ONNX op family at a time: small plain-torch models -> ONNX -> ncnn .param/.bin, run in
the real ncnn package and compared with onnxruntime; each test also checks that the expected
ncnn layer type is in the .param."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn
import torch.nn.functional as F

pytest.importorskip("ncnn")

from nnport.convert import convert  # noqa: E402
from nnport.errors import ConversionError  # noqa: E402

from .models import check_blob_shapes, export  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _layers(text: str) -> list[str]:
    return [ln.split()[0] for ln in text.splitlines()[2:] if ln.strip()]


def _convert(tmp_path, model, args, layers, rtol=1e-3, atol=1e-4, input_names=("input",),
             absent=(), opset=17):
    src = export(model, args, tmp_path / "m.onnx", input_names=input_names, opset=opset)
    res = convert(src, tmp_path / "m.param", rtol=rtol, atol=atol)
    assert res.report.outputs
    for o in res.report.outputs:
        assert o.ok, str(o)
    check_blob_shapes(src, tmp_path / "m.param",
                      {n: a.numpy() for n, a in zip(input_names, args)})
    text = (tmp_path / "m.param").read_text()
    types = _layers(text)
    for layer in layers:
        assert layer in types, (layer, types)
    for layer in absent:
        assert layer not in types, (layer, types)
    return text


class Fn(nn.Module):
    def __init__(self, fn, *mods):
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(mods)

    def forward(self, *x):
        return self.fn(self, *x)


def _params_of(text: str, layer_type: str) -> dict:
    for ln in text.splitlines()[2:]:
        parts = ln.split()
        if parts and parts[0] == layer_type:
            nb, nt = int(parts[2]), int(parts[3])
            return dict(p.split("=", 1) for p in parts[4 + nb + nt:])
    raise AssertionError(f"no {layer_type} layer")


# ---------------------------------------------------------------- ConvTranspose

@pytest.mark.parametrize("cfg", [
    dict(cin=4, cout=6, k=3, stride=2, padding=1, output_padding=1),
    dict(cin=4, cout=6, k=(3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0)),
    dict(cin=3, cout=5, k=4, stride=2, padding=1, dilation=2),
    dict(cin=4, cout=5, k=2, stride=2, bias=False),
])
def test_conv_transpose(tmp_path, cfg):
    m = nn.ConvTranspose2d(cfg.pop("cin"), cfg.pop("cout"), cfg.pop("k"), **cfg)
    with torch.no_grad():
        m.weight.uniform_(-1, 1)  # asymmetric weights: a flipped or transposed layout shows
    _convert(tmp_path, m, (torch.randn(1, m.in_channels, 7, 6),), ["Deconvolution"])


@pytest.mark.parametrize("groups,cin,cout", [(4, 4, 4), (2, 4, 6), (3, 6, 3)])
def test_conv_transpose_grouped(tmp_path, groups, cin, cout):
    m = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, groups=groups)
    with torch.no_grad():
        m.weight.uniform_(-1, 1)
    _convert(tmp_path, m, (torch.randn(1, cin, 5, 6),), ["DeconvolutionDepthWise"])


# ---------------------------------------------------------------- normalization

def test_instance_norm_affine(tmp_path):
    m = nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    _convert(tmp_path, m, (torch.randn(1, 6, 5, 7) * 3 + 1,), ["InstanceNorm"])


def test_instance_norm_plain(tmp_path):
    _convert(tmp_path, nn.InstanceNorm2d(4), (torch.randn(1, 4, 6, 6),), ["InstanceNorm"])


@pytest.mark.parametrize("groups,c", [(2, 6), (3, 6), (6, 6), (1, 4)])
def test_group_norm(tmp_path, groups, c):
    m = nn.GroupNorm(groups, c)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    _convert(tmp_path, m, (torch.randn(1, c, 5, 4) * 2,), ["GroupNorm"])


# ---------------------------------------------------------------- Pad

@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
@pytest.mark.parametrize("pads", [(1, 2, 0, 3), (2, 1, 1, 0)])
def test_pad(tmp_path, mode, pads):
    kw = {"value": 0.5} if mode == "constant" else {}
    m = Fn(lambda self, x: F.pad(x, pads, mode=mode, **kw))
    _convert(tmp_path, m, (torch.randn(1, 3, 6, 7),), ["Padding"])


def test_pad_circular(tmp_path):
    """torch writes circular padding as slices and concats, which ncnn maps."""
    m = Fn(lambda self, x: F.pad(x, (1, 2, 2, 1), mode="circular"))
    _convert(tmp_path, m, (torch.randn(1, 3, 6, 7),), ["Concat"])


@pytest.mark.parametrize("shape", [(1, 1, 16), (1, 5), (1, 2, 3, 4)])
@pytest.mark.parametrize("dim", [0, "-rank"])
def test_concat_on_a_batch_of_1(tmp_path, shape, dim):
    """Steps of batch 1 stacked on axis 0 (as dynamo unrolls nn.RNN): the inputs are held
    with their leading 1, the result whole, and read by what follows on its new axis 0."""
    from .models import ncnn_matches

    d = -len(shape) if dim == "-rank" else dim
    k = torch.arange(float(np.prod(shape))).reshape(shape) / 10
    m = Fn(lambda self, x: (torch.cat([torch.tanh(x), x * 2, k, x + 1], d) * 3).sum(-1))
    ncnn_matches(tmp_path, m, (torch.randn(*shape),), layers=["Concat"], dynamo=True)


def test_pad_channels(tmp_path):
    m = Fn(lambda self, x: F.pad(x, (1, 1, 0, 2, 1, 2), value=-1.0))
    _convert(tmp_path, m, (torch.randn(1, 3, 4, 5),), ["Padding"])


# ---------------------------------------------------------------- Reduce

@pytest.mark.parametrize("op", ["mean", "sum", "amax", "amin"])
@pytest.mark.parametrize("dims", [(1,), (2, 3), (-1,), (1, 3), (1, 2, 3)])
@pytest.mark.parametrize("keep", [True, False])
def test_reduce(tmp_path, op, dims, keep):
    fn = getattr(torch, op)
    m = Fn(lambda self, x: fn(x, dim=dims, keepdim=keep))
    _convert(tmp_path, m, (torch.randn(1, 3, 4, 5),), ["Reduction"])


@pytest.mark.parametrize("dims", [(1,), (2,), (1, 2)])
def test_reduce_3d(tmp_path, dims):
    m = Fn(lambda self, x: x.mean(dim=dims, keepdim=False) + x.sum(dim=dims, keepdim=False))
    _convert(tmp_path, m, (torch.randn(1, 6, 5),), ["Reduction"])


@pytest.mark.parametrize("op", ["logsumexp", "prod", "l2", "l1", "sumsq"])
def test_reduce_other(tmp_path, op):
    fns = {"logsumexp": lambda x: torch.logsumexp(x, dim=2, keepdim=True),
           "prod": lambda x: torch.prod(x, dim=3, keepdim=True),
           "l2": lambda x: torch.linalg.vector_norm(x, 2, dim=(2,), keepdim=True),
           "l1": lambda x: torch.linalg.vector_norm(x, 1, dim=(3,), keepdim=True),
           "sumsq": lambda x: (x * x).sum(dim=1, keepdim=True)}
    fn = fns[op]
    m = Fn(lambda self, x: fn(x))
    x = torch.rand(1, 3, 4, 5) + 0.5
    _convert(tmp_path, m, (x,), [] if op == "sumsq" else ["Reduction"], opset=18)


# ---------------------------------------------------------------- pooling

@pytest.mark.parametrize("k,s,p,ceil,cip", [
    (3, 2, 1, False, True), (3, 2, 1, False, False), (3, 2, 1, True, True),
    (3, 2, 1, True, False), (2, 2, 0, True, True), (3, 2, 0, True, False),
    ((3, 2), (2, 1), (1, 0), False, False), (2, 3, 1, True, False), (2, 3, 1, True, True),
    ((3, 2), (2, 3), (1, 1), True, True),
])
def test_avg_pool(tmp_path, k, s, p, ceil, cip):
    m = nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=cip)
    _convert(tmp_path, m, (torch.randn(1, 3, 9, 8),), ["Pooling"])


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 1, False), (3, 2, 1, True), (2, 2, 0, True),
                                        (2, 3, 1, True)])
def test_max_pool(tmp_path, k, s, p, ceil):
    m = nn.MaxPool2d(k, s, p, ceil_mode=ceil)
    _convert(tmp_path, m, (torch.randn(1, 3, 9, 8),), ["Pooling"])


# ---------------------------------------------------------------- Softmax

@pytest.mark.parametrize("shape,dim", [
    ((1, 4, 5, 6), 1), ((1, 4, 5, 6), 2), ((1, 4, 5, 6), 3), ((1, 4, 5, 6), -1),
    ((1, 5, 6), 1), ((1, 5, 6), 2), ((1, 7), 1), ((1, 2, 3, 4, 5), 2), ((1, 2, 3, 4, 5), 4),
])
@pytest.mark.parametrize("log", [False, True])
def test_softmax(tmp_path, shape, dim, log):
    fn = F.log_softmax if log else F.softmax
    m = Fn(lambda self, x: fn(x * 3, dim=dim))
    _convert(tmp_path, m, (torch.randn(*shape),), ["Softmax"])


# ---------------------------------------------------------------- activations

@pytest.mark.parametrize("name,mod,layer", [
    ("leaky", nn.LeakyReLU(0.13), "ReLU"),
    ("elu", nn.ELU(0.7), "ELU"),
    ("hardsigmoid", nn.Hardsigmoid(), "HardSigmoid"),
    ("clip", nn.Hardtanh(-0.5, 0.8), "Clip"),
    ("relu6", nn.ReLU6(), "Clip"),
    ("selu", nn.SELU(), "SELU"),
    ("mish", nn.Mish(), "Mish"),
    ("silu", nn.SiLU(), "Swish"),
    ("softplus", nn.Softplus(), "Softplus"),
    ("prelu1", nn.PReLU(), "PReLU"),
    ("preluc", nn.PReLU(4, 0.2), "PReLU"),
])
@pytest.mark.parametrize("shape", [(1, 4, 5, 6), (1, 4, 7)])
def test_activation(tmp_path, name, mod, layer, shape):
    if isinstance(mod, nn.PReLU):
        with torch.no_grad():
            mod.weight.uniform_(0.05, 0.5)
    _convert(tmp_path, mod, (torch.randn(*shape) * 3,), [layer])


def test_clamp_min_only(tmp_path):
    m = Fn(lambda self, x: torch.clamp(x, min=-0.3))
    _convert(tmp_path, m, (torch.randn(1, 3, 4, 4),), ["Clip"])


# ---------------------------------------------------------------- Resize

@pytest.mark.parametrize("mode,align,scale,size", [
    ("bilinear", False, 2.0, None), ("bilinear", True, 2.0, None),
    ("bilinear", False, None, (7, 11)), ("bilinear", True, None, (7, 11)),
    ("bilinear", False, 0.5, None), ("nearest", None, 2.0, None),
    ("nearest", None, None, (12, 15)), ("bicubic", False, 2.0, None),
    ("bicubic", True, None, (9, 13)),
])
def test_resize(tmp_path, mode, align, scale, size):
    kw = {} if align is None else {"align_corners": align}
    m = Fn(lambda self, x: F.interpolate(x, size=size, scale_factor=scale, mode=mode, **kw))
    tol = 1e-3 if mode != "bicubic" else 1e-3
    _convert(tmp_path, m, (torch.randn(1, 3, 6, 8),), ["Interp"], rtol=tol, atol=tol / 10)


@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_dynamic_size(tmp_path, cip):
    """With a dynamic H/W the pooling params may not depend on the size."""
    from nnport.verify import verify

    m = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=cip)
    src = export(m, (torch.randn(1, 3, 9, 9),), tmp_path / "d.onnx",
                 dynamic_axes={"input": {2: "h", 3: "w"}})
    res = convert(src, tmp_path / "d.param", rtol=1e-3, atol=1e-4,
                  input_shapes={"input": (1, 3, 9, 9)})
    assert res.ok, res.report.lines()
    rep = verify(src, tmp_path / "d.param", input_shapes={"input": (1, 3, 11, 13)},
                 rtol=1e-3, atol=1e-4)
    assert rep.ok, rep.lines()


@pytest.mark.parametrize("kind", ["avg1", "max1", "gavg1", "gmax1"])
def test_pool_1d(tmp_path, kind):
    mod = {"avg1": nn.AvgPool1d(3, 2, 1, ceil_mode=True), "max1": nn.MaxPool1d(3, 2, 1),
           "gavg1": nn.AdaptiveAvgPool1d(1), "gmax1": nn.AdaptiveMaxPool1d(1)}[kind]
    _convert(tmp_path, mod, (torch.randn(1, 4, 11),), ["Pooling1D"])


def test_global_pool_2d(tmp_path):
    m = Fn(lambda self, x: F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1))
    _convert(tmp_path, m, (torch.randn(1, 4, 5, 6),), ["Pooling"])


def test_mish_opset18(tmp_path):
    _convert(tmp_path, nn.Mish(), (torch.randn(1, 4, 5, 6) * 3,), ["Mish"], opset=18)


# ---------------------------------------------------------------- Conv + activation fusion

@pytest.mark.parametrize("act,code", [
    (nn.ReLU(), "1"), (nn.LeakyReLU(0.2), "2"), (nn.ReLU6(), "3"), (nn.Sigmoid(), "4"),
    (nn.Mish(), "5"), (nn.Hardswish(), "6"), (nn.Hardtanh(-0.4, 0.7), "3"),
])
@pytest.mark.parametrize("groups", [1, 4])
def test_conv_activation_fused(tmp_path, act, code, groups):
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=groups)
    m = Fn(lambda self, x: self.mods[1](self.mods[0](x)), conv, act)
    layer = "ConvolutionDepthWise" if groups > 1 else "Convolution"
    text = _convert(tmp_path, m, (torch.randn(1, 4, 6, 6),), [layer],
                    absent=["ReLU", "Clip", "Sigmoid", "Mish", "HardSwish", "Softplus"])
    assert _params_of(text, layer)["9"] == code


@pytest.mark.parametrize("groups", [1, 4])
def test_conv_swish_not_fused(tmp_path, groups):
    """ncnn has no fused swish: the Swish layer stays after the convolution."""
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=groups)
    m = Fn(lambda self, x: F.silu(self.mods[0](x)), conv)
    layer = "ConvolutionDepthWise" if groups > 1 else "Convolution"
    text = _convert(tmp_path, m, (torch.randn(1, 4, 6, 6),), [layer, "Swish"])
    assert "9" not in _params_of(text, layer)


def test_deconv_activation_fused(tmp_path):
    m = Fn(lambda self, x: F.leaky_relu(self.mods[0](x), 0.1),
           nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1))
    text = _convert(tmp_path, m, (torch.randn(1, 3, 5, 5),), ["Deconvolution"], absent=["ReLU"])
    assert _params_of(text, "Deconvolution")["9"] == "2"


def test_conv_output_activation_not_fused_into_graph_output(tmp_path):
    """A convolution whose raw output is also a graph output keeps its activation apart."""
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.c(x)
            return y, F.relu(y)

    _convert(tmp_path, Two(), (torch.randn(1, 3, 6, 6),), ["Convolution", "ReLU"])


# ---------------------------------------------------------------- 1-D / 3-D convolution

@pytest.mark.parametrize("cfg,layer", [
    (dict(cin=3, cout=5, k=3, padding=1), "Convolution3D"),
    (dict(cin=3, cout=4, k=(3, 2, 3), stride=(1, 2, 2), padding=(1, 0, 1), dilation=(2, 1, 1)),
     "Convolution3D"),
    (dict(cin=4, cout=4, k=3, padding=1, groups=4), "ConvolutionDepthWise3D"),
    (dict(cin=4, cout=6, k=(1, 3, 3), padding=(0, 1, 1), groups=2, bias=False),
     "ConvolutionDepthWise3D"),
])
def test_conv3d(tmp_path, cfg, layer):
    m = nn.Conv3d(cfg.pop("cin"), cfg.pop("cout"), cfg.pop("k"), **cfg)
    with torch.no_grad():
        m.weight.uniform_(-1, 1)
    _convert(tmp_path, m, (torch.randn(1, m.in_channels, 5, 6, 7),), [layer])


def test_conv3d_relu_pool3d(tmp_path):
    m = Fn(lambda self, x: F.max_pool3d(F.relu(self.mods[0](x)), 2) +
           F.avg_pool3d(self.mods[1](x), 2),
           nn.Conv3d(2, 4, 3, padding=1), nn.Conv3d(2, 4, 3, padding=1))
    text = _convert(tmp_path, m, (torch.randn(1, 2, 4, 6, 6),), ["Convolution3D", "Pooling3D"],
                    absent=["ReLU"])
    assert _params_of(text, "Convolution3D")["9"] == "1"


@pytest.mark.parametrize("k,s,p,ceil,cip", [(3, 2, 1, False, True), (3, 2, 1, True, True),
                                            (2, 2, 0, True, False), ((1, 3, 3), 2, (0, 1, 1),
                                                                      True, False)])
def test_avg_pool3d(tmp_path, k, s, p, ceil, cip):
    m = nn.AvgPool3d(k, s, p, ceil_mode=ceil, count_include_pad=cip)
    _convert(tmp_path, m, (torch.randn(1, 3, 5, 7, 6),), ["Pooling3D"])


def test_global_pool3d(tmp_path):
    m = Fn(lambda self, x: F.adaptive_avg_pool3d(x, 1) * F.adaptive_max_pool3d(x, 1))
    _convert(tmp_path, m, (torch.randn(1, 3, 4, 5, 6),), ["Pooling3D"])


@pytest.mark.parametrize("groups,layer", [(1, "Convolution1D"), (2, "ConvolutionDepthWise1D"),
                                          (4, "ConvolutionDepthWise1D")])
def test_conv1d(tmp_path, groups, layer):
    m = nn.Conv1d(4, 8, 3, stride=2, padding=1, groups=groups)
    _convert(tmp_path, m, (torch.randn(1, 4, 11),), [layer])


@pytest.mark.parametrize("nsp,groups,layer", [
    (1, 1, "Deconvolution1D"), (1, 2, "DeconvolutionDepthWise1D"), (3, 1, "Deconvolution3D"),
    (3, 2, "DeconvolutionDepthWise3D"),
])
def test_conv_transpose_1d_3d(tmp_path, nsp, groups, layer):
    cls = nn.ConvTranspose1d if nsp == 1 else nn.ConvTranspose3d
    m = cls(4, 6, 3, stride=2, padding=1, output_padding=1, groups=groups)
    with torch.no_grad():
        m.weight.uniform_(-1, 1)
    shape = (1, 4, 7) if nsp == 1 else (1, 4, 3, 4, 5)
    _convert(tmp_path, m, (torch.randn(*shape),), [layer])


# ---------------------------------------------------------------- RNN initial states

class _Rec(nn.Module):
    def __init__(self, kind, bidir=False, const_state=False, outputs="all"):
        super().__init__()
        self.kind = kind
        self.rnn = getattr(nn, kind)(6, 5, bidirectional=bidir, batch_first=True)
        self.const_state = const_state
        self.outputs = outputs
        d = 2 if bidir else 1
        self.register_buffer("h0", torch.randn(d, 1, 5))
        self.register_buffer("c0", torch.randn(d, 1, 5))

    def forward(self, x, *states):
        if self.const_state:
            states = (self.h0, self.c0) if self.kind == "LSTM" else (self.h0,)
        st = tuple(states) if self.kind == "LSTM" else states[0]
        y, hn = self.rnn(x, st)
        if self.outputs == "y":
            return y
        if self.kind == "LSTM":
            return y, hn[0], hn[1]
        return y, hn


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_rnn_initial_state_inputs(tmp_path, kind):
    """h0/c0 as model inputs (one direction: a (1, 1, hidden) state has ncnn's batch of 1)."""
    m = _Rec(kind)
    args = (torch.randn(1, 4, 6), torch.randn(1, 1, 5)) + \
        ((torch.randn(1, 1, 5),) if kind == "LSTM" else ())
    names = ("input", "h0", "c0") if kind == "LSTM" else ("input", "h0")
    text = _convert(tmp_path, m, args, [kind], input_names=names)
    assert sum(1 for t in _layers(text) if t == kind) == 1


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bidir", [False, True])
def test_rnn_constant_initial_state(tmp_path, kind, bidir):
    m = _Rec(kind, bidir, const_state=True)
    _convert(tmp_path, m, (torch.randn(1, 5, 6),), [kind, "MemoryData"])


def _with_sequence_lens(src, lens):
    model = onnx.load(src)
    node = next(n for n in model.graph.node if n.op_type == "LSTM")
    model.graph.initializer.append(onnx.numpy_helper.from_array(
        np.asarray(lens, np.int32), "seq_lens"))
    while len(node.input) < 5:
        node.input.append("")
    node.input[4] = "seq_lens"
    onnx.save(model, src)
    return src


def test_rnn_sequence_lens_full(tmp_path):
    src = export(_Rec("LSTM", const_state=True, outputs="y"), (torch.randn(1, 4, 6),),
                 tmp_path / "m.onnx")
    _with_sequence_lens(src, [4])
    res = convert(src, tmp_path / "m.param", rtol=1e-3, atol=1e-4)
    assert res.ok, res.report.lines()


def test_rnn_sequence_lens_short_fails_cleanly(tmp_path):
    src = export(_Rec("LSTM", const_state=True, outputs="y"), (torch.randn(1, 4, 6),),
                 tmp_path / "m.onnx")
    _with_sequence_lens(src, [3])
    with pytest.raises(ConversionError) as e:
        convert(src, tmp_path / "m.param")
    msg = str(e.value)
    assert "LSTM" in msg and "sequence_lens" in msg and "\n" not in msg
    assert not (tmp_path / "m.param").exists() and not (tmp_path / "m.bin").exists()


# ---------------------------------------------------------------- more normalization

def test_instance_norm_1d(tmp_path):
    m = nn.InstanceNorm1d(4, affine=True)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    _convert(tmp_path, m, (torch.randn(1, 4, 9) * 2,), ["InstanceNorm"])


@pytest.mark.parametrize("shape", [(1, 6, 9), (1, 6, 3, 4, 5)])
def test_group_norm_other_ranks(tmp_path, shape):
    m = nn.GroupNorm(3, 6)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-1, 1)
    _convert(tmp_path, m, (torch.randn(*shape) * 2,), ["GroupNorm"])


def test_group_norm_onnx_op(tmp_path):
    """ONNX GroupNormalization (opset 21: per-channel scale and bias)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    bias = rng.uniform(-1, 1, 6).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("GroupNormalization", ["input", "scale", "bias"], ["output"],
                          num_groups=2, epsilon=1e-5)], "gn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 6, 5, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 6, 5, 4])],
        [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "gn.onnx")
    res = convert(tmp_path / "gn.onnx", tmp_path / "gn.param", rtol=1e-3, atol=1e-4)
    assert res.ok, res.report.lines()
    assert "GroupNorm" in _layers((tmp_path / "gn.param").read_text())


# ---------------------------------------------------------------- clean failures

@pytest.mark.parametrize("name,fn,shape,words", [
    ("pad-batch", lambda x: F.pad(x, (0, 0, 0, 0, 0, 0, 1, 0)), (1, 2, 4, 4), ["Pad"]),
    ("dilated-pool", lambda x: F.max_pool2d(x, 2, dilation=2), (1, 2, 8, 8), ["MaxPool"]),
])
def test_unmappable_fails_cleanly(tmp_path, name, fn, shape, words):
    src = export(Fn(lambda self, x: fn(x)), (torch.randn(*shape),), tmp_path / "m.onnx")
    with pytest.raises(ConversionError) as e:
        convert(src, tmp_path / "m.param")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("node "), msg
    for w in words:
        assert w in msg, msg
    assert not (tmp_path / "m.param").exists() and not (tmp_path / "m.bin").exists()


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,shape", [(1, (1, 3, 4, 5)), (2, (1, 3, 4, 5)), (-1, (1, 3, 4))])
def test_softmax_opset11_coerced(tmp_path, op, axis, shape):
    """Before opset 13 Softmax(axis) normalizes over all axes from ``axis`` on, flattened
    (torch never writes that, so the graph is built by hand)."""
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node(op, ["input"], ["output"], axis=axis)], "sm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(shape))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, tmp_path / "sm.onnx")
    res = convert(tmp_path / "sm.onnx", tmp_path / "sm.param", rtol=1e-3, atol=1e-4)
    assert res.ok, res.report.lines()
    assert "Softmax" in _layers((tmp_path / "sm.param").read_text())


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("nsp", [1, 2, 3])
def test_conv_transpose_batchnorm(tmp_path, groups, nsp):
    """BatchNorm after a transposed convolution: folded into the weights when it is a separate
    layer (the fold relies on the output-channel-major weight layout)."""
    ct = getattr(nn, f"ConvTranspose{nsp}d")(4, 6, 3, stride=2, padding=1, groups=groups)
    bn = getattr(nn, f"BatchNorm{nsp}d")(6)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    m = Fn(lambda self, x: F.relu(self.mods[1](self.mods[0](x))), ct, bn)
    shape = {1: (1, 4, 7), 2: (1, 4, 5, 6), 3: (1, 4, 3, 4, 5)}[nsp]
    layer = ("DeconvolutionDepthWise" if groups > 1 else "Deconvolution") + \
        {1: "1D", 2: "", 3: "3D"}[nsp]
    _convert(tmp_path, m, (torch.randn(*shape),), [layer], absent=["BatchNorm", "ReLU"])


@pytest.mark.parametrize("op", ["ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ReduceL1"])
@pytest.mark.parametrize("keep", [0, 1])
def test_reduce_onnx_ops(tmp_path, op, keep):
    """Reduce ops torch writes as several nodes, built by hand (opset 18: axes as an input)."""
    from onnx import TensorProto, helper, numpy_helper

    out = [1, 3, 1, 5] if keep else [1, 3, 5]
    g = helper.make_graph(
        [helper.make_node(op, ["input", "axes"], ["output"], keepdims=keep)], "r",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 5])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out)],
        [numpy_helper.from_array(np.array([2], np.int64), "axes")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "r.onnx")
    res = convert(tmp_path / "r.onnx", tmp_path / "r.param", rtol=1e-3, atol=1e-4,
                  inputs={"input": np.random.default_rng(0).uniform(0.5, 2, (1, 3, 4, 5))
                          .astype(np.float32)})
    assert res.ok, res.report.lines()
    assert "Reduction" in _layers((tmp_path / "r.param").read_text())


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_bidirectional_state_inputs(tmp_path, kind):
    """(2, 1, hidden) states of a bidirectional RNN are model inputs whose first dim is the
    direction, not a batch: ncnn gets them whole."""
    m = _Rec(kind, bidir=True)
    args = (torch.randn(1, 4, 6), torch.randn(2, 1, 5)) + \
        ((torch.randn(2, 1, 5),) if kind == "LSTM" else ())
    names = ("input", "h0", "c0") if kind == "LSTM" else ("input", "h0")
    text = _convert(tmp_path, m, args, [kind], input_names=names)
    assert sum(1 for t in _layers(text) if t == kind) == 1


class AddMM(nn.Module):
    """Gemm with alpha/beta and a bias computed at run time, with B at run time and constant."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.rand(26, 33))

    def forward(self, c, a, b, c2, a2):
        return (torch.addmm(c, a, b, beta=1.4, alpha=0.7),
                torch.addmm(c2, a2, self.w, beta=0.5, alpha=2.0), torch.addmm(c2, a2, self.w))


def test_gemm_with_a_run_time_bias_and_beta(tmp_path):
    from .models import ncnn_matches

    args = (torch.rand(7, 33), torch.rand(7, 26), torch.rand(26, 33), torch.rand(5, 33),
            torch.rand(5, 26))
    ncnn_matches(tmp_path, AddMM(), args, layers=["Gemm"], rtol=1e-4, atol=1e-4, dynamo=True)
