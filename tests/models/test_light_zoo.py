"""The nine ONNX model-zoo graphs in onnx/backend/test/data/light, with seeded random weights,
converted and compared with onnxruntime at the fp32 default tolerance (rtol 1e-4)."""
import pytest

from .builders import all_cases
from .checks import case_param, check_case

CASES = [c for c in all_cases() if c.name.startswith("light_")]


def test_all_nine_light_models_listed():
    assert len(CASES) == 9


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_light_model(case):
    assert case.rtol is None  # verify's fp32 default: rtol 1e-4
    check_case(case)


def test_random_weights_replace_constant_of_shape():
    from .builders import light_model

    m = light_model("squeezenet")
    assert not any(n.op_type == "ConstantOfShape" for n in m.graph.node)
    # weights differ from the 0.02 placeholder and are reproducible
    from onnx import numpy_helper

    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    w2 = {t.name: numpy_helper.to_array(t) for t in light_model("squeezenet").graph.initializer}
    conv1 = w["conv1_w_0"]
    assert conv1.std() > 0.05 and (conv1 == w2["conv1_w_0"]).all()
