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


class SqueezeExcite(torch.nn.Module):
    """A conv stem and a squeeze-and-excitation block: two 1×1 convolutions of a pooled pixel."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.reduce = torch.nn.Conv2d(16, 4, 1)
        self.expand = torch.nn.Conv2d(4, 16, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        s = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * torch.nn.functional.hardsigmoid(self.expand(s))


def test_one_pixel_convolutions_become_sums_inductor_fuses():
    torch.manual_seed(0)
    module = SqueezeExcite().eval()
    # one image: the stem stays oneDNN's and the two pixel convolutions are not extern calls
    # any more; two images are not one pixel of one image, so all three stay convolutions
    for batch, convs in ((1, 1), (2, 3)):
        x = torch.randn(batch, 3, 10, 10)
        with torch.no_grad():
            expected = module(x)
        out, code = _code(nnport.compile(module), (x,))
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
        assert len(re.findall(r"_convolution_pointwise\w*\(", code)) == convs, code


@pytest.mark.parametrize("conv, rewritten", [
    (torch.nn.Conv2d(8, 5, 1), True),
    (torch.nn.Conv2d(8, 5, 1, bias=False), True),
    (torch.nn.Conv2d(8, 5, 1, padding="same"), True),
    (torch.nn.Conv2d(8, 5, 1, stride=2), True),
    (torch.nn.Conv2d(8, 5, 1, padding=1), False),      # a 3×3 output: the border is the bias
    (torch.nn.Conv2d(8, 6, 1, groups=2), False),
    (torch.nn.Conv2d(8, 5, 3, padding=1), False),
])
def test_which_convolutions_become_sums(conv, rewritten):
    from nnport.torch_compile import one_pixel_convs_as_sums

    torch.manual_seed(0)
    conv = conv.eval()
    x = torch.randn(1, 8, 1, 1)
    graphs = []

    def capture(gm, example_inputs):
        graphs.append((gm, one_pixel_convs_as_sums(gm)))
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        out = torch.compile(conv, backend=capture)(x)
        want = conv(x)
    gm, count = graphs[0]
    assert count == (1 if rewritten else 0)
    assert any(n.target is torch.conv2d for n in gm.graph.nodes) != rewritten
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
