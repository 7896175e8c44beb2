"""``ruff check src`` with the rules in pyproject.toml, as part of the test command: the rules
hold the design (only the allowed modules touch protobuf ``onnx``; torch, TensorFlow and the
runtimes are imported where they are used, never at module level elsewhere)."""
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
