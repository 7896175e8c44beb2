"""Example 5: is every op of a model exportable to ONNX?  A one-line report before exporting.

``nnport.torch_export.check_exportable(module, inputs)`` (or ``nnport export SRC --check``) lists
the torch ops with no ONNX translation; registering one with ``custom_ops.register`` makes the
model exportable.

    python examples/check_exportable.py
"""
from __future__ import annotations

import io
import sys

import torch
from torch import Tensor, nn

from nnport.torch_export import check_exportable, custom_ops


@torch.library.custom_op("nnport_examples::hard_swish_ish", mutates_args=())
def hard_swish_ish(x: Tensor) -> Tensor:
    """An op of our own: x * clamp(x + 3, 0, 6) / 6."""
    return x * torch.clamp(x + 3, 0, 6) / 6


@hard_swish_ish.register_fake
def _(x):
    return torch.empty_like(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return hard_swish_ish(self.conv(x))


def hard_swish_ish_onnx(x):
    from onnxscript import opset18 as op

    return op.HardSwish(x)


def main(out_dir=None) -> dict:
    model = Net().eval()
    example = (torch.randn(1, 3, 16, 16),)
    buf = io.StringIO()
    before = check_exportable(model, example, file=buf)
    custom_ops.register(torch.ops.nnport_examples.hard_swish_ish.default, hard_swish_ish_onnx)
    try:
        after = check_exportable(model, example, file=buf)
    finally:
        custom_ops.unregister(torch.ops.nnport_examples.hard_swish_ish.default)
    lines = buf.getvalue().splitlines()
    print("\n".join(lines))
    assert before == ["nnport_examples::hard_swish_ish"] and after == []
    return {"before": before, "after": after, "lines": lines}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
