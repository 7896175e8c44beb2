"""Small plain-torch models with a module tree worth recovering (used by test_module_tree.py
and test_round_trip.py)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, mid * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid * 4)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != mid * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, mid * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(mid * 4))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(Bottleneck(16, 8), Bottleneck(32, 8), Bottleneck(32, 8))
        self.layer2 = nn.Sequential(Bottleneck(32, 16, 2), Bottleneck(64, 16), Bottleneck(64, 16))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 2)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTLike(nn.Module):
    def __init__(self, dim=32, depth=4, heads=2, patch=8, img=32, classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class ConvBNAct(nn.Module):
    def __init__(self, cin, cout, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class CSPBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1 = ConvBNAct(c, c, 1)
        self.cv2 = ConvBNAct(c, c, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class Detect(nn.Module):
    def __init__(self, chs, no):
        super().__init__()
        self.m = nn.ModuleList(nn.Conv2d(c, no, 1) for c in chs)

    def forward(self, feats):
        return [m(f).flatten(2) for m, f in zip(self.m, feats)]


class YOLOLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2)
        self.stage1 = nn.Sequential(ConvBNAct(16, 32, 3, 2), CSPBlock(32), CSPBlock(32))
        self.stage2 = nn.Sequential(ConvBNAct(32, 64, 3, 2), CSPBlock(64), CSPBlock(64))
        self.detect = Detect([32, 64], 8)

    def forward(self, x):
        p3 = self.stage1(self.stem(x))
        p4 = self.stage2(p3)
        return torch.cat(self.detect([p3, p4]), dim=2)


class LSTMTagger(nn.Module):
    def __init__(self, vocab=50, emb=16, hidden=24, tags=5):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, tags)

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens))
        return F.log_softmax(self.classifier(out), dim=-1)


def tiny_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=48, max_position_embeddings=32, attn_implementation="eager")
    return BertTagger(BertModel(cfg, add_pooling_layer=False))


class BertTagger(nn.Module):
    """A wrapper (its parameters are all under ``bert.``) returning the last hidden state."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids):
        return self.bert(input_ids=input_ids).last_hidden_state


def _jitter(model: nn.Module) -> nn.Module:
    """Every parameter a little different (trained weights are; equal initializers such as
    LayerNorm's ones would otherwise be shared by the exporter under one name)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def build(name: str):
    """(model in eval mode, example inputs)."""
    model, example = _build(name)
    return _jitter(model), example


def _build(name: str):
    torch.manual_seed(0)
    if name == "resnet":
        return _randomize_bn(ResNetLike()).eval(), (torch.randn(1, 3, 32, 32),)
    if name == "vit":
        return ViTLike().eval(), (torch.randn(1, 3, 32, 32),)
    if name == "yolo":
        return _randomize_bn(YOLOLike()).eval(), (torch.randn(1, 3, 64, 64),)
    if name == "lstm":
        return LSTMTagger().eval(), (torch.randint(0, 50, (2, 7)),)  # batch 2: see export_onnx
    if name == "bert":
        return tiny_bert().eval(), (torch.randint(0, 64, (1, 8)),)
    raise KeyError(name)


MODELS = ["resnet", "vit", "yolo", "lstm", "bert"]


_EXPORTS: dict = {}


def export_onnx(name: str, exporter: str):
    """(model, example inputs, ModelProto) of ``build(name)`` exported with the dynamo
    (``"dynamo"``) or TorchScript (``"ts"``) exporter, dynamic batch; cached per process."""
    key = (name, exporter)
    if key not in _EXPORTS:
        model, example = build(name)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                dyn = tuple({0: torch.export.Dim.DYNAMIC} for _ in example)
                prog = torch.onnx.export(model, example, dynamo=True, verbose=False,
                                         dynamic_shapes=dyn)
                proto = prog.model_proto
            else:
                buf = io.BytesIO()
                names = [f"in{i}" for i in range(len(example))]
                torch.onnx.export(model, example, buf, dynamo=False, input_names=names,
                                  dynamic_axes={n: {0: "batch"} for n in names}, opset_version=17)
                proto = onnx.load_from_string(buf.getvalue())
        _EXPORTS[key] = (model, example, proto)
    return _EXPORTS[key]


def kept_tensors(model, proto) -> dict:
    """Original state-dict entries the ONNX file holds unchanged, under their own name, and
    that conversion keeps as tensors (a table gathered at constant indices is folded)."""
    inits = {t.name: t for t in proto.graph.initializer}
    from nnport.convert import prepare

    used = set(prepare(proto).graph.initializers)
    kept = {}
    for k, v in model.state_dict().items():
        t = inits.get(k)
        if t is not None and k in used and v.is_floating_point():
            arr = onnx.numpy_helper.to_array(t)
            if arr.shape == tuple(v.shape) and np.array_equal(arr, v.numpy()):
                kept[k] = v
    return kept
