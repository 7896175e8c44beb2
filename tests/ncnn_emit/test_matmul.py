"""MatMul of two run-time tensors whose batches differ: a (1, ...) operand held without its
batch against an (N, ...) operand held whole broadcasts in ncnn as in numpy, and the product is
N samples held whole (it was declared batch-dropped: read back with a stray leading 1, and the
layers after it read the wrong axes)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")

from .models import ncnn_matches  # noqa: E402


@pytest.mark.parametrize("p_shape", [(1, 4, 16, 7), (1, 16, 7), (16, 7)])
def test_batch_of_one_against_a_batch_of_two(tmp_path, p_shape):
    from nnport.ncnn_emit.runner import NcnnRunner

    torch.manual_seed(0)
    q, k, v = torch.rand(1, 4, 16, 8), torch.rand(2, 4, 7, 8), torch.rand(2, 4, 7, 9)
    p = torch.rand(*p_shape)

    class M(nn.Module):
        def forward(self, q, k, v, p):
            s = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
            return s @ v, (s @ v).sum(-1), p @ k

    ncnn_matches(tmp_path, M(), (q, k, v, p), layers=["MatMul"])
    got = NcnnRunner(tmp_path / "m.param").run({"in0": q.numpy(), "in1": k.numpy(),
                                                "in2": v.numpy(), "in3": p.numpy()})
    with torch.no_grad():
        want = M()(q, k, v, p)
    assert [g.shape for g in got] == [tuple(w.shape) for w in want]
