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
