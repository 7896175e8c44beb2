"""Small plain-torch models for the ncnn tests."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn2 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.act = nn.Hardswish()
        self.fc = nn.Linear(8 + 16, 10)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)

    def forward(self, x):
        y = F.relu(self.bn1(self.c1(x)))
        y = y + self.pw(F.relu6(self.bn2(self.dw(y))))  # residual
        y = self.pool(y)
        z = self.act(self.c2(y))
        z = F.interpolate(z, scale_factor=2.0, mode="nearest")
        y = torch.cat([y, z], 1)
        y = torch.sigmoid(y) * y
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(y)


class Encoder(nn.Module):
    """A transformer encoder block from plain layers."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.h, self.d = heads, d
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff1, self.ff2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.h

        def split(y):
            return y.reshape(b, t, self.h, hd).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = self.ln1(x + self.o(y))
        return self.ln2(x + self.ff2(F.gelu(self.ff1(x))))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(32, 12)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y.transpose(0, 1))
        return self.fc(y)


def export(module, args, path, dynamic_axes=None, input_names=("input",), opset=17):
    module.eval()
    torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                      input_names=list(input_names), output_names=["output"],
                      dynamic_axes=dynamic_axes)
    return path


class QKVAttention(nn.Module):
    """timm-style attention: one qkv Linear, reshape to (B, N, 3, heads, d), permute the 3 to
    the front, unbind (a rank-5 tensor whose batch axis moves)."""

    def __init__(self, d=32, heads=4, gather=False):
        super().__init__()
        self.h, self.gather = heads, gather
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = (qkv[0], qkv[1], qkv[2]) if self.gather else qkv.unbind(0)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.h) ** -0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))


class Windows(nn.Module):
    """Swin-style window partition and reverse (rank-6 reshapes), MaxViT-style grid partition
    (a 5-group permutation), with attention over the windows as a batch."""

    def __init__(self, c=16, ws=4):
        super().__init__()
        self.ws = ws
        self.norm = nn.LayerNorm(c)
        self.attn = QKVAttention(c, 2)
        self.fc = nn.Linear(c, c)

    def forward(self, x):  # (B, H, W, C)
        b, h, w, c = x.shape
        ws = self.ws
        win = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        win = win.reshape(-1, ws * ws, c)
        win = self.attn(self.norm(win))
        y = win.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        grid = y.view(b, ws, h // ws, ws, w // ws, c).permute(0, 2, 4, 1, 3, 5)
        grid = self.fc(grid.reshape(-1, ws * ws, c))
        z = grid.view(b, h // ws, w // ws, ws, ws, c).permute(0, 3, 1, 4, 2, 5).reshape(b, h, w, c)
        return x + y + z


class TokensAsBatch(nn.Module):
    """LeViT-style: BatchNorm1d over tokens flattened into the batch, a strided subsample
    x[:, ::2, ::2] of a (B, H, W, C) map, and an L2-normalize whose Expand feeds a Div."""

    def __init__(self, c=16):
        super().__init__()
        self.lin = nn.Linear(c, c, bias=False)
        self.bn = nn.BatchNorm1d(c)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):  # (B, H, W, C)
        b, h, w, c = x.shape
        t = self.bn(self.lin(x).flatten(0, 2)).reshape(b, h, w, c)
        t = t[:, ::2, 1::2]
        t = F.normalize(t, dim=-1)
        return t.float()


def ncnn_matches(tmp_path, module, args, layers=(), rtol=1e-4, atol=1e-4, opset=17,
                 dynamo=False):
    """Export ``module`` at the shapes of ``args`` (a tuple of tensors), convert to ncnn without
    a runtime, run the .param in the real ncnn package and compare every output with torch;
    ``layers``: ncnn layer types that must be in the .param.  ``dynamo``: export with torch's
    dynamo exporter (``optimize=True``, its own opset) instead of TorchScript's.  Returns the
    .param text."""
    import numpy as np

    from nnport.convert import convert
    from nnport.ncnn_emit.runner import NcnnRunner

    module.eval()
    names = [f"in{i}" for i in range(len(args))]
    with torch.no_grad():
        want = module(*args)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    path = tmp_path / "m.onnx"
    outs = [f"out{i}" for i in range(len(want))]
    if dynamo:
        torch.onnx.export(module, tuple(args), str(path), dynamo=True, optimize=True,
                          input_names=names, output_names=outs)
    else:
        torch.onnx.export(module, tuple(args), str(path), dynamo=False, opset_version=opset,
                          input_names=names, output_names=outs)
    convert(path, tmp_path / "m.param", verify=False,
            input_shapes={n: tuple(a.shape) for n, a in zip(names, args)})
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    got = NcnnRunner(tmp_path / "m.param").run(feeds)
    check_blob_shapes(path, tmp_path / "m.param", feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = w.detach().float().numpy()
        assert g.size == w.size, (g.shape, w.shape)
        np.testing.assert_allclose(g.reshape(w.shape), w, rtol=rtol, atol=atol)
    text = (tmp_path / "m.param").read_text()
    types = [ln.split()[0] for ln in text.splitlines()[2:] if ln.strip()]
    for layer in layers:
        assert layer in types, (layer, types)
    return text


def onnx_matches(tmp_path, nodes, feeds, inits=(), layers=(), rtol=1e-4, atol=1e-4,
                 opset=17):
    """A graph of onnx.helper ``nodes`` whose inputs are ``feeds`` (name -> float32 array) and
    whose outputs are the last node's outputs, converted to ncnn without a runtime and compared
    with onnxruntime.  Returns the .param text."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from nnport.convert import convert
    from nnport.ncnn_emit.runner import NcnnRunner

    ins = [helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, list(v.shape))
           for k, v in feeds.items()]
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
            for o in nodes[-1].output]
    g = helper.make_graph(nodes, "g", ins, outs, list(inits))
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    convert(path, tmp_path / "m.param", verify=False,
            input_shapes={k: tuple(v.shape) for k, v in feeds.items()})
    got = NcnnRunner(tmp_path / "m.param").run(feeds)
    check_blob_shapes(path, tmp_path / "m.param", feeds)
    for g_, w in zip(got, want):
        assert g_.size == w.size, (g_.shape, w.shape)
        np.testing.assert_allclose(g_.reshape(w.shape), w, rtol=rtol, atol=atol)
    text = (tmp_path / "m.param").read_text()
    types = [ln.split()[0] for ln in text.splitlines()[2:] if ln.strip()]
    for layer in layers:
        assert layer in types, (layer, types)
    return text


def check_blob_shapes(onnx_path, param_path, feeds):
    """Every blob the converter named for an ONNX value has, in ncnn, the shape that value
    declares (its dims, less a dropped batch of 1): a layer writing another layout than its
    readers expect gives wrong numbers only at some sizes (ncnn packs 4, 8 or 16 lanes)."""
    from nnport.ncnn_emit import build_graph
    from nnport.ncnn_emit.runner import NcnnRunner

    graph, _ = build_graph(str(onnx_path), {k: tuple(v.shape) for k, v in feeds.items()})
    got = NcnnRunner(param_path).blob_shapes(feeds, graph.declared)
    bad = {b: (graph.declared[b], s) for b, s in got.items() if tuple(graph.declared[b]) != s}
    assert not bad, f"blobs whose ncnn shape is not the declared one (declared, ncnn): {bad}"
