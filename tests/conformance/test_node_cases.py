"""Every ONNX backend node case through nnport.to_torch (generate, exec, run), at the case's tolerances."""
import pytest

from .cases import all_cases, run_case
from .skips import NOT_YET, SKIPS


def _params():
    for name in sorted(all_cases()):
        marks = []
        if name in SKIPS:
            marks.append(pytest.mark.skip(reason=SKIPS[name]))
        elif name in NOT_YET:
            marks.append(pytest.mark.xfail(reason=NOT_YET[name], strict=True))
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_node_case(name):
    run_case(all_cases()[name])
