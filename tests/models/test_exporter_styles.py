"""Graphs in the styles of other exporters: paddle2onnx (Constant-node weights, HardSigmoid,
HardSwish, p2o dim names), tf2onnx (NHWC with Transpose pairs), and weights computed from
constants through Identity/Cast/Reshape/DequantizeLinear."""
import pytest

from .builders import all_cases
from .checks import case_param, check_case, check_file_roundtrip

CASES = [c for c in all_cases() if c.name in ("paddle_style", "tf_style", "const_weights")]


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_exporter_style_model(case):
    check_case(case)


ROUNDTRIP = ["light_squeezenet", "torch_resnet_torchscript", "torch_detect_torchscript",
             "hf_bert_torchscript", "old_opset9", "paddle_style"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n.startswith("hf_") else [])
                                  for n in ROUNDTRIP])
def test_file_roundtrip_standalone(name, tmp_path):
    """convert() writes model.py + .safetensors that a fresh interpreter loads without nnport."""
    case = next(c for c in all_cases() if c.name == name)
    check_file_roundtrip(case, tmp_path, variant=1 if case.dynamic else 0)


def test_check_catches_a_wrong_weight():
    """The model checks are able to fail: a perturbed weight is reported as a mismatch."""
    import torch

    import nnport

    case = next(c for c in all_cases() if c.name == "tf_style")
    model = case.model()
    module = nnport.to_torch(model)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in module.parameters():  # random (a uniform shift of the logits' bias is invisible)
            p.add_(1e-2 * torch.randn(p.shape, generator=g))
    rep = nnport.verify(model, module, inputs=case.feeds(0))
    assert not rep.ok
