"""Every script in examples/ runs (its main()) and reaches the result it promises."""
import importlib.util
import sys
from pathlib import Path

import onnx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name):
    modname = f"_nnport_example_{name}"
    if modname in sys.modules:  # custom ops register once per process
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def test_resnet18_export(tmp_path):
    out = load("resnet18_export").main(tmp_path)
    model = onnx.load(str(out["onnx"]))
    assert [i.name for i in model.graph.input] == ["image", "side"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert out["export_report"].ok and out["torchscript_report"].ok
    assert len(out["export_report"].outputs) == 2  # example shape and the check shape
    assert out["torchscript"].stat().st_size > 0


def test_onnx_only_to_torchscript(tmp_path):
    out = load("onnx_only_to_torchscript").main(tmp_path)
    assert out["report"].ok
    source = out["py"].read_text()
    assert "nn.Conv2d(" in source and "import nnport" not in source
    assert out["notes"] and out["notes"][0].startswith("TorchScript by torch.jit.")


def test_super_resolution(tmp_path):
    out = load("super_resolution").main(tmp_path)
    assert out["losses"][-1] < out["losses"][0]
    assert [r[0] for r in out["results"]] == [2.0, 3.0, 1.5]
    assert all(p > 80 for _, _, p in out["results"])
    ops = {n.op_type for n in onnx.load(str(out["onnx"])).graph.node}
    assert "Resize" in ops
    assert {n.domain for n in onnx.load(str(out["onnx"])).graph.node} <= {"", "ai.onnx"}


def test_trace_vs_script(tmp_path):
    mod = load("trace_vs_script")
    out = mod.main(tmp_path)
    assert out["trace_vs_script"] == {"trace": [True, False], "script": [True, True]}
    assert out["dynamic_axes"] == mod.EXPECTED
    assert len({tuple(v) for v in mod.EXPECTED.values()}) == 3  # three different patterns


def test_check_exportable(capsys):
    out = load("check_exportable").main()
    assert out["before"] == ["nnport_examples::hard_swish_ish"] and out["after"] == []
    assert len(out["lines"]) == 2 and "custom_ops.register" in out["lines"][0]
