"""nnport.compile: inductor with weight freezing, inference_mode, fp32 linears in oneDNN, a C++
wrapper and no guards on the module."""
import copy
import re

import pytest
import torch
from torch._inductor.utils import run_and_get_code

import nnport
from nnport.torch_compile import _EXPECTED, _device_op_class, onednn_linear


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(32)
        self.fc1 = torch.nn.Linear(32, 64)
        self.fc2 = torch.nn.Linear(64, 32)
        self.q, self.k, self.v = (torch.nn.Linear(32, 16) for _ in range(3))
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)

    def forward(self, x, img):
        y = x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))
        z = torch.softmax(self.q(y) @ self.k(y).transpose(1, 2), -1) @ self.v(y)
        return y, torch.relu(self.bn(self.conv(img))), z


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    torch.manual_seed(0)
    model = Block().eval()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("compile") / "block.onnx"
    x, img = torch.randn(1, 10, 32), torch.randn(1, 3, 12, 12)
    torch.onnx.export(model, (x, img), str(path), dynamo=False, input_names=["x", "img"])
    return nnport.to_torch(str(path)), (x, img)


def _code(fn, args) -> tuple:
    torch._dynamo.reset()
    out, codes = run_and_get_code(fn, *args)
    return out, "\n".join(codes)


def test_matches_eager_and_packs_linears_for_onednn(generated):
    module, args = generated
    with torch.no_grad():
        expected = module(*args)
    compiled = nnport.compile(module)
    out, code = _code(compiled, args)
    for got, want in zip(out, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # the C++ wrapper calls the linears in oneDNN (fc1 with the GELU fused, fc2 with the
    # residual add fused, q, k and v as one) and the frozen, packed conv
    assert len(re.findall(r"_linear_pointwise\w*\(", code)) == 3, code
    assert "_mkl_linear" not in code
    assert "_convolution_pointwise" in code
    assert "aoti_torch_" in code
    # a second call reuses the compiled graph and still matches
    torch.testing.assert_close(compiled(*args)[0], expected[0], rtol=1e-4, atol=1e-5)


def test_plain_freezing_packs_linears_for_mkl(generated):
    """The control for the test above: what inductor writes on its own (static batch → MKL),
    so the oneDNN choice is nnport's doing."""
    if not torch._C.has_mkl:
        pytest.skip("this torch has no MKL")
    module, args = generated
    plain = torch.compile(module)
    with torch.inference_mode(), torch._inductor.config.patch(freezing=True):
        _, code = _code(plain, args)
    assert "_mkl_linear" in code and "mkldnn._linear_pointwise" not in code


def test_inductor_is_left_as_it_was(generated):
    cls = _device_op_class()
    assert cls is not None, "inductor's CpuMkldnnDeviceOp changed: update torch_compile._EXPECTED"
    before = {name: getattr(cls, name) for name in _EXPECTED}
    module, args = generated
    compiled = nnport.compile(module)
    compiled(*args)
    assert {name: getattr(cls, name) for name in _EXPECTED} == before
    with pytest.raises(ZeroDivisionError):  # a compile that fails restores it too
        with onednn_linear():
            assert {name: getattr(cls, name) for name in _EXPECTED} != before
            1 / 0
    assert {name: getattr(cls, name) for name in _EXPECTED} == before


def test_snapshot_checks_inputs_not_the_module(generated):
    """A new input shape compiles again; the module's weights are read when it compiles."""
    module, (x, img) = generated
    module = copy.deepcopy(module)
    compiled = nnport.compile(module)
    with torch.no_grad():
        want = module(x[:, :4], img)
    before = compiled(x, img)[1]
    torch.testing.assert_close(compiled(x[:, :4], img)[0], want[0], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    torch.testing.assert_close(compiled(x, img)[1], before)  # frozen: the old weights


def test_outputs_and_mode(generated):
    module, args = generated
    module.train()
    compiled = nnport.compile(module, mode="max-autotune-no-cudagraphs")
    assert not module.training
    y = compiled(*args)[0]
    assert y.is_inference()
    assert repr(compiled) == f"nnport.compile({type(module).__name__})"


def test_bad_input():
    with pytest.raises(nnport.InputError, match="nnport.compile takes a torch.nn.Module, not str"):
        nnport.compile("model.onnx")
    with pytest.raises(nnport.InputError, match="unknown mode 'fastest'; use one of default, "):
        nnport.compile(torch.nn.Linear(2, 2), mode="fastest")
