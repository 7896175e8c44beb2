"""Small plain-torch models for the export tests."""
import torch
from torch import nn


class CnnBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)
        for bn in (self.bn1, self.bn2):  # non-trivial running statistics
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0,
                                           batch_first=True)
        self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, x):
        return self.enc(x)


class Lstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 12, num_layers=1, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


class TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image, bias):
        y = torch.relu(self.conv(image)) + bias
        return y, y.flatten(2).max(dim=2).values


class BakesBatch(nn.Module):
    """int(x.shape[0]) is a Python number to the tracer: the batch is baked in as a constant."""

    def forward(self, x):
        n = int(x.shape[0])
        return (x * 2).reshape(n, -1)


def seeded(cls):
    torch.manual_seed(0)
    return cls().eval()


def cnn_bn():
    return seeded(CnnBn)


def encoder():
    return seeded(Encoder)


def lstm():
    return seeded(Lstm)


def two_in_two_out():
    return seeded(TwoInTwoOut)


def bakes_batch():
    return BakesBatch()


class SpecializesOnBatch(nn.Module):
    """Python control flow on a size: torch.export specializes the batch to the example's."""

    def forward(self, x):
        return x * 2 if x.shape[0] == 1 else x * 3


class DataDependent(nn.Module):
    """Control flow on a value: torch.export cannot capture it (the tracer takes one branch)."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1
