"""``ruff check src`` with the rules in pyproject.toml, as part of the test command: the rules
hold the design (only the allowed modules touch protobuf ``onnx``; torch, TensorFlow and the
runtimes are imported where they are used, never at module level elsewhere).  And ``mypy`` on
the modules ``[tool.mypy]`` lists (skipped where mypy is not installed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        import ruff  # noqa: F401  (only to say how to get it)
    except ImportError:
        pytest.fail("ruff is not installed: pip install 'nnport[test]' (or pip install ruff)")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=300)


def test_ruff_check_src_is_clean():
    res = _ruff("check", "src", "--output-format", "concise", "--no-cache")
    assert res.returncode == 0, f"ruff check src:\n{res.stdout}{res.stderr}"


@pytest.mark.parametrize("code, rule", [
    ("import onnx\n", "TID251"),
    ("from onnx import helper\n", "TID251"),
    ("import onnx.numpy_helper\n", "TID251"),
    ("import torch\n", "TID253"),
])
def test_the_layering_rules_bite(code, rule):
    """The same rules reject protobuf ``onnx`` and a module-level torch import in a module that
    is not allowed them (the check above cannot pass by configuring nothing)."""
    res = _ruff("check", "--output-format", "concise", "--no-cache", "--stdin-filename",
                "src/nnport/passes/new_pass.py", "-", stdin=code)
    assert res.returncode == 1 and rule in res.stdout, res.stdout + res.stderr


def test_onnx_ir_and_lazy_imports_are_fine():
    code = ("from __future__ import annotations\n\nimport onnx_ir as ir\n\n\n"
            "def f():\n    import torch\n\n    return torch, ir\n")
    res = _ruff("check", "--output-format", "concise", "--no-cache", "--stdin-filename",
                "src/nnport/passes/new_pass.py", "-", stdin=code)
    assert res.returncode == 0, res.stdout + res.stderr


def _mypy(*args: str) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy", reason="mypy is not installed: pip install 'nnport[test]'")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_mypy_on_the_typed_modules():
    """The modules listed in pyproject.toml's [tool.mypy] type-check."""
    res = _mypy()
    assert res.returncode == 0, f"mypy:\n{res.stdout}{res.stderr}"


def test_mypy_reads_nnport_with_that_configuration(tmp_path):
    """The same configuration finds nnport's types (mypy_path) and reports a wrong one, so the
    check above cannot pass by reading nothing."""
    bad = tmp_path / "bad.py"
    bad.write_text("from nnport.errors import InputError\n\nx: int = InputError('no')\n")
    res = _mypy(str(bad))
    assert res.returncode == 1 and "Incompatible types in assignment" in res.stdout, \
        res.stdout + res.stderr
