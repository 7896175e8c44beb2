"""Small PyTorch models exported by torch.onnx (TorchScript and dynamo exporters) with dynamic
batch/H/W: converted once, run at two input shapes."""
import pytest

from .builders import all_cases
from .checks import case_param, check_case

CASES = [c for c in all_cases() if c.name.startswith("torch_")]


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_torch_exported_model(case):
    source, _ = check_case(case)
    if "resnet" in case.name or "unet" in case.name:
        assert "nn.Conv2d(" in source


def test_dynamic_dims_stay_dynamic():
    """The input keeps symbolic batch/H/W in the export, so the shapes differ between variants."""
    case = next(c for c in CASES if c.name == "torch_detect_torchscript")
    pytest.importorskip("torch")
    m = case.model()
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]
    assert case.feeds(0)["input"].shape != case.feeds(1)["input"].shape
