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


class _BertWrap:
    pass


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
    big = sum(p.numel() * 4 for p in model.parameters()) > 2**31 - 2**24
    with torch.no_grad():
        torch.onnx.export(Wrap(model), args, str(tmp), dynamo=False, opset_version=17,
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names},
                                        "last_hidden_state": {0: "batch", 1: "seq"}})
    if big:  # the exporter wrote external data beside tmp under tensor names; keep it as is
        os.replace(tmp, path)
    else:
        os.replace(tmp, path)
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


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "bert-large"
    print({"bert-large": bert_large, "bert-large-ids": bert_large_ids,
           "bert-small": bert_small}[which]())
