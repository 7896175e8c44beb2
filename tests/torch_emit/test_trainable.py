"""The generated module is a trainable PyTorch program: only learnable floating tensors are
``nn.Parameter``s (BatchNorm statistics, scalar constants, masks, index tensors are buffers or
literals), BatchNorm follows ``train()``/``eval()``, and a training step changes the output."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nnport
from nnport.convert import generate_torch
from nnport.torch_emit import build_module
from nnport.torch_emit.codegen import learnable

from models.builders import get_case, paddle_bn_stats_model
from util import assert_matches_ort


def _module(model):
    source, state = generate_torch(model)
    return source, build_module(source, state)


def _train_step_changes_output(module, x: torch.Tensor, lr: float = 0.05):
    """One SGD step in train mode; returns (eval output before, eval output after)."""
    module.eval()
    with torch.no_grad():
        before = module(x)
    module.train()
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=lr)
    out = module(x)
    out = out[0] if isinstance(out, tuple) else out
    loss = out.float().square().mean()
    loss.backward()
    grads = [p.grad for p in module.parameters()]
    assert grads and all(g is not None for g in grads), "a parameter got no gradient"
    opt.step()
    module.eval()
    with torch.no_grad():
        after = module(x)
    return before, after


@pytest.mark.parametrize("rank_known", [True, False])
def test_paddle_bn_stats_and_scalars_are_not_parameters(rank_known):
    model = paddle_bn_stats_model(rank_known)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    assert_matches_ort(model, feeds)
    source, m = _module(model)
    params = dict(m.named_parameters())
    buffers = dict(m.named_buffers())
    n_param = sum(p.numel() for p in params.values())
    # conv weight 8*3*3*3, BN scale and bias 2*8, fc 8*4 + 4: nothing else is trained
    assert n_param == 216 + 16 + 36, sorted(params)
    assert not any("helper_constant" in k for k in params), sorted(params)
    stats = [b for k, b in buffers.items() if b.numel() == 8 and b.dtype == torch.float32]
    assert len(stats) == 2, sorted(buffers)  # running mean and var
    if not rank_known:
        assert "training=self.training" in source and "F.batch_norm(" in source
    x = torch.from_numpy(feeds["x"])
    mean_before = [s.clone() for s in stats]
    before, after = _train_step_changes_output(m, x)
    assert not torch.allclose(before, after)
    # train mode used the batch statistics and updated the running ones
    assert all(not torch.equal(a, b) for a, b in zip(mean_before, stats))


def test_eval_mode_batch_norm_keeps_running_stats():
    m = _module(paddle_bn_stats_model(False))[1].eval()
    bufs = [b.clone() for b in m.buffers()]
    with torch.no_grad():
        m(torch.randn(2, 3, 8, 8))
    assert all(torch.equal(a, b) for a, b in zip(bufs, m.buffers()))


@pytest.mark.parametrize("name", ["torch_resnet_torchscript", "torch_mobilenet_torchscript",
                                  pytest.param("torch_resnet_dynamo", marks=pytest.mark.slow)])
def test_torch_exported_model_trains(name):
    case = get_case(name)
    for mod in case.needs:
        pytest.importorskip(mod)
    _, m = _module(case.model())
    params = dict(m.named_parameters())  # (both exporters fold eval-mode BN into the convs)
    assert not any("running" in k or "num_batches" in k for k in params)
    assert all(p.dtype.is_floating_point for p in params.values())
    x = torch.from_numpy(case.feeds(0)["input"])
    before, after = _train_step_changes_output(m, x)
    assert not torch.allclose(before, after)


def test_learnable_rule():
    assert learnable(np.ones((4, 4), np.float32))
    assert learnable(np.zeros(8, np.float32))  # a zero-initialized bias still trains
    assert not learnable(np.array([0.5], np.float32))  # scalar constant
    assert not learnable(np.array(2.0, np.float32))
    assert not learnable(np.arange(6, dtype=np.int64))  # shapes, indices
    assert not learnable(np.ones(4, bool))
    causal = np.triu(np.full((4, 4), -np.inf, np.float32), 1)
    assert not learnable(causal)
    assert not learnable(np.triu(np.full((4, 4), -10000.0, np.float32), 1))
    assert learnable(np.array([-20000.0, 3.0, 0.0], np.float32))
