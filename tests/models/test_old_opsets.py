"""Opset 7-10 era graphs (IR version 3, initializers repeated as graph inputs, names with '/'
and ':'): BatchNormalization(spatial), Dropout-7, Upsample, Sum of three inputs."""
import pytest

from .builders import all_cases, old_opset_model
from .checks import case_param, check_case

CASES = [c for c in all_cases() if c.name.startswith("old_opset")]


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_old_opset_model(case):
    check_case(case)


def test_old_model_shape():
    m = old_opset_model(7)
    assert m.ir_version == 3
    inits = {t.name for t in m.graph.initializer}
    assert inits <= {i.name for i in m.graph.input}
    assert any("/" in n and ":" in n for n in inits)
