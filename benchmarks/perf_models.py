"""Models for the performance benchmarks, built from transformers configs with random weights
(no download) and cached as ONNX under /tmp (or $NNPORT_BENCH_CACHE).

    python benchmarks/perf_models.py bert-large      # export once (heavy: ~1.3 GB, minutes)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE = Path(os.environ.get("NNPORT_BENCH_CACHE", "/tmp/nnport-bench"))


def bert(layers: int = 24, hidden: int = 1024, heads: int = 16, inter: int = 4096):
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=inter,
                                  attn_implementation="eager")
    return transformers.BertModel(cfg).eval()


def export_bert(path: Path, layers: int = 24, hidden: int = 1024, heads: int = 16,
                inter: int = 4096, mask: bool = True) -> Path:
    """Export a BERT encoder with dynamic batch and sequence (TorchScript exporter).
    ``mask=False``: input_ids only (no attention-mask arithmetic in the graph; onnx2torch
    cannot convert the mask's GreaterOrEqual)."""
    import torch

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    model = bert(layers, hidden, heads, inter)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask=None):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.randint(0, 1000, (2, 16))
    args, names = (ids,), ["input_ids"]
    if mask:
        args, names = (ids, torch.ones(2, 16, dtype=torch.int64)), names + ["attention_mask"]
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(Wrap(model), args, str(tmp), dynamo=False, opset_version=17,
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names},
                                        "last_hidden_state": {0: "batch", 1: "seq"}})
    os.replace(tmp, path)  # a model over 2 GB has its external data beside tmp, by tensor name
    return path


def bert_large() -> Path:
    return export_bert(CACHE / "bert_large" / "model.onnx")


def bert_large_ids() -> Path:
    """The same encoder with input_ids as its only input (what onnx2torch can convert)."""
    return export_bert(CACHE / "bert_large_ids" / "model.onnx", mask=False)


def bert_small() -> Path:
    return export_bert(CACHE / "bert_small" / "model.onnx", layers=2, hidden=128, heads=2,
                       inter=512)


def vit_tiny():
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                                 intermediate_size=768, image_size=224, patch_size=16,
                                 attn_implementation="eager")
    return transformers.ViTModel(cfg, add_pooling_layer=False).eval()


def resnet50():
    import torch
    import transformers

    torch.manual_seed(0)
    return transformers.ResNetModel(transformers.ResNetConfig()).eval()


def convnext_tiny():
    import torch
    import transformers

    torch.manual_seed(0)
    return transformers.ConvNextModel(transformers.ConvNextConfig()).eval()


def swin_tiny():
    import torch
    import transformers

    torch.manual_seed(0)
    return transformers.SwinModel(transformers.SwinConfig(), add_pooling_layer=False).eval()


def mobilenet_v3_large():
    """MobileNetV3-Large (Howard et al. 2019, table 1) in plain torch: transformers has no
    MobileNetV3 and the project does not depend on torchvision or timm."""
    import torch
    from torch import nn

    def div8(c: int) -> int:  # the nearest multiple of 8, never below 90% of c
        r = max(8, (c + 4) // 8 * 8)
        return r + 8 if r < 0.9 * c else r

    def cba(cin, cout, k, s=1, groups=1, act=None):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc1 = nn.Conv2d(c, div8(c // 4), 1)
            self.fc2 = nn.Conv2d(div8(c // 4), c, 1)

        def forward(self, x):
            s = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            return x * torch.nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))

    class Block(nn.Module):
        def __init__(self, cin, k, exp, cout, se, act, stride):
            super().__init__()
            act = nn.Hardswish if act == "HS" else nn.ReLU
            self.expand = cba(cin, exp, 1, act=act) if exp != cin else nn.Identity()
            self.dw = cba(exp, exp, k, stride, groups=exp, act=act)
            self.se = SE(exp) if se else nn.Identity()
            self.project = cba(exp, cout, 1)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.project(self.se(self.dw(self.expand(x))))
            return x + y if self.residual else y

    table = [(3, 16, 16, 0, "RE", 1), (3, 64, 24, 0, "RE", 2), (3, 72, 24, 0, "RE", 1),
             (5, 72, 40, 1, "RE", 2), (5, 120, 40, 1, "RE", 1), (5, 120, 40, 1, "RE", 1),
             (3, 240, 80, 0, "HS", 2), (3, 200, 80, 0, "HS", 1), (3, 184, 80, 0, "HS", 1),
             (3, 184, 80, 0, "HS", 1), (3, 480, 112, 1, "HS", 1), (3, 672, 112, 1, "HS", 1),
             (5, 672, 160, 1, "HS", 2), (5, 960, 160, 1, "HS", 1), (5, 960, 160, 1, "HS", 1)]

    class MobileNetV3(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, cin = [cba(3, 16, 3, 2, act=nn.Hardswish)], 16
            for k, exp, cout, se, act, s in table:
                blocks.append(Block(cin, k, exp, cout, se, act, s))
                cin = cout
            blocks.append(cba(cin, 960, 1, act=nn.Hardswish))
            self.features = nn.Sequential(*blocks)
            self.classifier = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(),
                                            nn.Linear(1280, 1000))

        def forward(self, x):
            x = torch.nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
            return self.classifier(x)

    torch.manual_seed(0)
    return MobileNetV3().eval()


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "bert-large"
    print({"bert-large": bert_large, "bert-large-ids": bert_large_ids,
           "bert-small": bert_small}[which]())
