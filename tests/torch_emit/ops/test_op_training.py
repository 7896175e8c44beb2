"""ai.onnx.preview.training optimizers, stepped in a loop and compared with torch.optim, which
implements the same algorithms independently (the conformance cases check one step each)."""
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import nnport
from nnport.errors import ConversionError

TRAINING = "ai.onnx.preview.training"


def _optimizer_model(op: str, groups: int, **attrs) -> onnx.ModelProto:
    names = ["X", "G", "V", "H"][:groups]
    ins = [helper.make_tensor_value_info("R", TensorProto.FLOAT, []),
           helper.make_tensor_value_info("T", TensorProto.INT64, [])]
    ins += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 4]) for n in names]
    outs = [n + "_new" for n in names if n != "G"]
    node = helper.make_node(op, ["R", "T"] + names, outs, domain=TRAINING, **attrs)
    graph = helper.make_graph([node], "opt", ins,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [3, 4])
                               for o in outs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(TRAINING, 1)])


def _loss_grad(x: torch.Tensor, step: int) -> torch.Tensor:
    target = torch.linspace(-1, 1, 12).reshape(3, 4) * (step + 1)
    return 2 * (x - target)  # d/dx of ||x - target||^2


def _run(op: str, groups: int, opt_cls, opt_kw: dict, attrs: dict, lr: float, steps: int = 4):
    module = nnport.to_torch(_optimizer_model(op, groups, **attrs))
    x0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    ref = torch.nn.Parameter(x0.clone())
    opt = opt_cls([ref], lr=lr, **opt_kw)
    x, state = x0.clone(), [torch.zeros(3, 4) for _ in range(groups - 2)]
    for t in range(steps):
        ref.grad = _loss_grad(ref.detach(), t)
        opt.step()
        out = module(torch.tensor(lr), torch.tensor(t, dtype=torch.int64), x,
                     _loss_grad(x, t), *state)
        x, state = out[0], list(out[1:])
        torch.testing.assert_close(x, ref.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(x, x0)


def test_adagrad_matches_torch_optim():
    _run("Adagrad", 3, torch.optim.Adagrad, dict(lr_decay=0.1, weight_decay=0.01, eps=1e-6),
         dict(decay_factor=0.1, norm_coefficient=0.01, epsilon=1e-6), lr=0.3)


def test_adam_matches_torch_optim():
    # the spec's T is 1-based for the bias correction (T = 0 skips it); torch.optim counts from 1
    module = nnport.to_torch(_optimizer_model("Adam", 4, alpha=0.9, beta=0.99, epsilon=1e-8))
    x0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    ref = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([ref], lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    x, v, h = x0.clone(), torch.zeros(3, 4), torch.zeros(3, 4)
    for t in range(1, 5):
        ref.grad = _loss_grad(ref.detach(), t)
        opt.step()
        x, v, h = module(torch.tensor(0.05), torch.tensor(t), x, _loss_grad(x, t), v, h)
        # torch adds eps to sqrt(h_hat), the spec to sqrt(h): equal up to eps-sized terms
        torch.testing.assert_close(x, ref.detach(), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(x, x0)


@pytest.mark.parametrize("mode", ["standard", "nesterov"])
def test_momentum_matches_torch_sgd(mode):
    _run("Momentum", 3, torch.optim.SGD,
         dict(momentum=0.8, dampening=0.3, weight_decay=0.02, nesterov=mode == "nesterov")
         if mode == "standard" else dict(momentum=0.8, weight_decay=0.02, nesterov=True),
         dict(alpha=0.8, beta=0.7 if mode == "standard" else 1.0, mode=mode,
              norm_coefficient=0.02), lr=0.1)


def test_bad_mode_and_groups_name_the_node():
    with pytest.raises(ConversionError, match="Momentum.*mode 'heavy'"):
        nnport.to_torch(_optimizer_model("Momentum", 3, alpha=0.8, beta=1.0, mode="heavy",
                                         norm_coefficient=0.0))
    bad = _optimizer_model("Adagrad", 3)
    bad.graph.node[0].input.append("X")  # four tensors cannot form three groups
    with pytest.raises(ConversionError, match="Adagrad.*3 equal groups"):
        nnport.to_torch(bad)
