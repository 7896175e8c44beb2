"""Generated forward code must create tensors on the device of the data it works on: a
``torch.arange``/``torch.zeros``/... in forward without ``device=`` builds a CPU tensor, which
breaks the model once it is moved to a GPU (e.g. position ids in BERT/GPT-2/T5, anchor grids)."""
import ast

import pytest

from nnport.convert import generate_torch

from .builders import all_cases
from .checks import case_param, need

FACTORIES = {"arange", "zeros", "ones", "full", "empty", "eye", "linspace", "rand", "randn",
             "randint", "scalar_tensor", "tensor", "as_tensor"}

CASES = [c for c in all_cases() if not c.name.startswith("light_")]


def factories_without_device(source: str) -> list[str]:
    bad = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name == "forward"):
            continue
        for call in ast.walk(fn):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == "torch"
                    and call.func.attr in FACTORIES
                    and not any(k.arg == "device" for k in call.keywords)):
                bad.append(ast.unparse(call))
    return bad


def test_detector_finds_missing_device():
    src = ("class Model:\n    def forward(self, x):\n"
           "        a = torch.arange(0, x.shape[0], dtype=torch.int64)\n"
           "        b = torch.zeros(3, device=x.device)\n        return a, b\n")
    assert factories_without_device(src) == ["torch.arange(0, x.shape[0], dtype=torch.int64)"]


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_forward_factories_name_a_device(case):
    need(case)
    source, _ = generate_torch(case.model())
    bad = factories_without_device(source)
    assert not bad, f"{case.name}: tensors created without device=: {bad[:5]}"
