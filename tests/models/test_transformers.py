"""transformers models (BERT, GPT-2, T5 encoder, ViT) from small configs with random weights,
exported with both torch.onnx exporters, dynamic batch and sequence."""
import pytest

from .builders import all_cases
from .checks import case_param, check_case

CASES = [c for c in all_cases() if c.name.startswith("hf_")]


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_transformers_model(case):
    check_case(case)
