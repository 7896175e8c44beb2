"""Shared checks for the model-level tests: convert, compare with onnxruntime, file round trip."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

import nnport
from nnport.convert import generate_torch
from nnport.torch_emit import build_module

from .builders import ModelCase

ALLOWED_IMPORTS = {"torch", "safetensors", "os", "math", "typing"}


def case_param(case: ModelCase):
    marks = [pytest.mark.slow] if case.slow else []
    return pytest.param(case, id=case.name, marks=marks)


def need(case: ModelCase):
    for mod in case.needs:
        pytest.importorskip(mod)


def imported_roots(source: str) -> set:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in generated code"
            roots.add(node.module.split(".")[0])
    return roots


def check_case(case: ModelCase, variants=None):
    """Convert ``case`` and compare with onnxruntime at every shape variant (both for dynamic
    models: the same generated module must serve the second shape)."""
    need(case)
    model = case.model()
    source, state = generate_torch(model)
    extra = imported_roots(source) - ALLOWED_IMPORTS
    assert not extra, f"generated code imports {sorted(extra)}"
    module = build_module(source, state, name=case.name)
    if variants is None:
        variants = (0, 1) if case.dynamic else (0,)
    reports = []
    for v in variants:
        feeds = case.feeds(v)
        rep = nnport.verify(model, module, inputs=feeds, rtol=case.rtol, atol=case.atol)
        shapes = {k: list(a.shape) for k, a in feeds.items()}
        assert rep.outputs, f"{case.name}: no outputs compared"
        assert rep.ok, f"{case.name} at {shapes}:\n" + "\n".join(rep.lines())
        reports.append(rep)
    return source, reports


_RUNNER = textwrap.dedent("""
    import ast, json, os, sys
    import numpy as np
    d = sys.argv[1]
    sys.path.insert(0, d)
    import model as generated
    m = generated.load()
    import torch
    spec = json.load(open(os.path.join(d, "io.json")))
    args = [torch.from_numpy(np.load(os.path.join(d, f"in_{i}.npy"))) for i in range(spec["n_in"])]
    with torch.no_grad():
        out = m(*args)
    if not isinstance(out, tuple):
        out = (out,)
    for i, o in enumerate(out):
        np.save(os.path.join(d, f"out_{i}.npy"), o.numpy())
    bad = sorted(k for k in sys.modules if k.split(".")[0] in ("nnport", "onnx", "onnxruntime", "onnx_ir"))
    print(json.dumps({"n_out": len(out), "bad_modules": bad}))
""")


def check_file_roundtrip(case: ModelCase, tmp_path, variant: int = 0):
    """``nnport.convert`` to model.py + .safetensors, then import it and call ``load()`` in a fresh
    interpreter that never imports nnport/onnx, and compare with onnxruntime."""
    need(case)
    model = case.model()
    feeds = case.feeds(variant)
    onnx_path = tmp_path / "source.onnx"
    onnx.save(model, onnx_path)
    py = tmp_path / "model.py"
    res = nnport.convert(onnx_path, py, inputs=feeds, rtol=case.rtol, atol=case.atol)
    assert res.ok, "\n".join(res.report.lines())
    assert py.is_file() and py.with_suffix(".safetensors").is_file()
    source = py.read_text()
    assert "def load(" in source and "class Model(nn.Module)" in source
    extra = imported_roots(source) - ALLOWED_IMPORTS
    assert not extra, f"generated code imports {sorted(extra)}"
    names = list(feeds)
    for i, n in enumerate(names):
        np.save(tmp_path / f"in_{i}.npy", feeds[n])
    (tmp_path / "io.json").write_text(json.dumps({"n_in": len(names)}))
    runner = tmp_path / "run_generated.py"
    runner.write_text(_RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-I", str(runner), str(tmp_path)], capture_output=True,
                          text=True, cwd=str(tmp_path), env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["bad_modules"] == [], f"generated model pulled in {info['bad_modules']}"
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, feeds)
    assert info["n_out"] == len(ref)
    from nnport.verify.compare import compare_arrays

    for i, r in enumerate(ref):
        got = np.load(tmp_path / f"out_{i}.npy")
        rep = compare_arrays(f"output {i}", r, got, case.rtol, case.atol)
        assert rep.ok, rep
