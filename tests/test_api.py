"""The Python API and the generated-code contract (DESIGN.md)."""
import ast
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import nnport
from nnport.demo import make_small_cnn
from nnport.convert import generate_torch


def test_to_torch_accepts_path_and_proto_and_leaves_proto_untouched(tmp_path):
    model = make_small_cnn()
    before = model.SerializeToString()
    m1 = nnport.to_torch(model)
    assert model.SerializeToString() == before
    p = tmp_path / "m.onnx"
    onnx.save(model, p)
    m2 = nnport.to_torch(str(p))
    x = torch.randn(2, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(m1(x), m2(x))


def test_generated_file_is_standalone(tmp_path):
    """model.py imports only torch/safetensors/stdlib and load() works in a fresh interpreter
    that has no nnport on its path."""
    onnx.save(make_small_cnn(), tmp_path / "m.onnx")
    out = tmp_path / "out"
    out.mkdir()
    res = nnport.convert(tmp_path / "m.onnx", out / "model.py")
    assert res.ok and res.outputs == [out / "model.py", out / "model.safetensors"]
    tree = ast.parse((out / "model.py").read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods <= {"torch", "safetensors", "os", "math", "typing"}, mods
    script = (  # -I and a filtered sys.path: the file must not need nnport
        "import sys, torch; sys.path = [p for p in sys.path if 'nnport' not in p]; "
        "import importlib.util as u; s = u.spec_from_file_location('m', sys.argv[1]); "
        "m = u.module_from_spec(s); s.loader.exec_module(m); "
        "net = m.load(); y = net(torch.zeros(3, 3, 16, 16)); print(tuple(y.shape), net.training)")
    p = subprocess.run([sys.executable, "-I", "-c", script, str(out / "model.py")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "(3, 10) False"


def test_generated_module_is_trainable_and_traceable():
    m = nnport.to_torch(make_small_cnn())
    params = dict(m.named_parameters())
    assert "conv1.weight" in params and params["conv1.weight"].requires_grad
    m.train()
    x = torch.randn(2, 3, 16, 16)
    loss = m(x).square().mean()
    loss.backward()
    assert params["conv1.weight"].grad is not None and params["conv1.weight"].grad.abs().sum() > 0
    m.eval()
    traced = torch.jit.trace(m, torch.randn(1, 3, 16, 16))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), m(x))
    scripted = torch.jit.script(m)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), m(x))


def test_initializers_listed_as_inputs_are_weights():
    """IR version 3 lists every initializer as a graph input: they are not forward() params."""
    model = make_small_cnn()
    for init in model.graph.initializer:
        model.graph.input.append(onnx.helper.make_tensor_value_info(
            init.name, init.data_type, list(init.dims)))
    model.ir_version = 3
    del model.opset_import[:]
    model.opset_import.append(onnx.helper.make_opsetid("", 9))
    source, _ = generate_torch(model)
    assert "def forward(self, image):" in source
    rep = nnport.verify(model, nnport.to_torch(model), input_shapes={"image": (1, 3, 16, 16)})
    assert rep.ok, rep.lines()


def test_verify_reports_mismatch_and_dtype_tolerance():
    model = make_small_cnn()
    m = nnport.to_torch(model)
    with torch.no_grad():
        m.fc.bias += 1e-2
    rep = nnport.verify(model, m)
    assert not rep.ok
    d = rep.to_dict()
    assert d["match"] is False and d["outputs"][0]["rtol"] == 1e-4
    assert d["outputs"][0]["max_abs_err"] == pytest.approx(1e-2, rel=1e-3)
