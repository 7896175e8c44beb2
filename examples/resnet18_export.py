"""Example 1: a ResNet-18-like network written in plain torch -> TorchScript and ONNX.

The network takes two inputs (an image and a vector of side features joined before the classifier)
and the ONNX export keeps batch, height and width dynamic.  nnport verifies the ONNX file against
the PyTorch module at the example shape and at a second shape, and the TorchScript file against
onnxruntime.

    python examples/resnet18_export.py [OUT_DIR]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import nnport
from nnport.torch_export import export


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + idt)


class ResNet18(nn.Module):
    """ResNet-18's layout ([2, 2, 2, 2] basic blocks); ``width`` scales the channels (64 in the
    original; smaller here so the example runs in seconds)."""

    def __init__(self, width: int = 16, num_classes: int = 10, side_features: int = 4):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin + side_features, num_classes)

    def forward(self, image, side):
        x = self.layers(self.stem(image))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(torch.cat([x, side], dim=1))


def build() -> ResNet18:
    torch.manual_seed(0)
    model = ResNet18()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def main(out_dir: str | Path | None = None) -> dict:
    out = Path(out_dir or tempfile.mkdtemp(prefix="nnport-resnet-"))
    model = build()
    # TorchScript, straight from the module
    scripted = torch.jit.script(model)
    scripted.save(str(out / "resnet18.pt"))
    # ONNX with two inputs and dynamic batch/height/width
    res = export(model, out / "resnet18.onnx",
                 input_shapes={"image": (1, 3, 64, 64), "side": (1, 4)},
                 dynamic={"image": {0: "batch", 2: "height", 3: "width"},
                          "side": {0: "batch"}},
                 check_shapes={"image": (2, 3, 96, 128), "side": (2, 4)})
    print("\n".join(res.report.lines()))
    assert res.ok, "ONNX export does not match PyTorch"
    # the TorchScript file, run by nnport's .pt runner against onnxruntime at a third shape
    rep = nnport.verify(str(out / "resnet18.onnx"), str(out / "resnet18.pt"),
                        input_shapes={"image": (3, 3, 80, 72), "side": (3, 4)})
    print("\n".join(rep.lines()))
    assert rep.ok, "TorchScript does not match ONNX"
    return {"onnx": out / "resnet18.onnx", "torchscript": out / "resnet18.pt",
            "export_report": res.report, "torchscript_report": rep}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
