"""``custom_ops`` (``--custom-op``) is an option of one conversion, passed down to the code
generator like the others: two conversions in one process, with different settings or none,
each see their own (it used to be a registration into the process-wide registry)."""
from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import nnport
from nnport.cli import main
from nnport.convert import generate_torch
from nnport.torch_emit import REGISTRY, custom


def _model() -> onnx.ModelProto:
    node = helper.make_node("SoftClip", ["x"], ["y"], domain="my.ops", limit=2.0)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                               helper.make_opsetid("my.ops", 1)])


def soft_clip(x, limit=1.0):
    return limit * torch.tanh(x / limit)  # noqa: F821  (torch of the generated file)


def test_two_conversions_in_one_process_keep_their_own_custom_ops():
    m = _model()
    with_fn, _ = generate_torch(m, custom_ops={"my.ops::SoftClip": soft_clip})
    with_ref, _ = generate_torch(m, custom_ops={"my.ops::SoftClip": "torch.nn.functional:hardtanh"})
    assert "def _custom_my_ops_SoftClip(x, limit=1.0):" in with_fn and "hardtanh" not in with_fn
    assert "from torch.nn.functional import hardtanh as _custom_my_ops_SoftClip" in with_ref
    assert "def _custom_my_ops_SoftClip" not in with_ref
    with pytest.raises(nnport.UnsupportedOpsError, match="my.ops::SoftClip"):
        generate_torch(m)  # nothing left behind by the two above
    assert REGISTRY.lookup("my.ops", "SoftClip", 1) is None and not custom.registered()


def test_custom_op_flag_does_not_outlive_its_command(tmp_path, capsys):
    onnx.save(_model(), str(tmp_path / "c.onnx"))
    (tmp_path / "ops.py").write_text("import torch\n\n\ndef soft_clip(x, limit=1.0):\n"
                                     "    return limit * torch.tanh(x / limit)\n")
    rc = main(["convert", str(tmp_path / "c.onnx"), str(tmp_path / "a.py"), "--no-verify",
               "--custom-op", f"my.ops::SoftClip={tmp_path / 'ops.py'}:soft_clip"])
    assert rc == 0, capsys.readouterr().err
    assert "def _custom_my_ops_SoftClip(x, limit=1.0):" in (tmp_path / "a.py").read_text()
    capsys.readouterr()
    rc = main(["convert", str(tmp_path / "c.onnx"), str(tmp_path / "b.py"), "--no-verify"])
    assert rc == 2 and "my.ops::SoftClip" in capsys.readouterr().err
    assert not (tmp_path / "b.py").exists()


def test_custom_ops_of_the_wrong_form_are_one_clean_error():
    with pytest.raises(nnport.InputError, match="domain::op_type"):
        generate_torch(_model(), custom_ops={"SoftClip": soft_clip})
    with pytest.raises(nnport.InputError, match="plain def"):
        generate_torch(_model(), custom_ops={"my.ops::SoftClip": lambda x: x})


def test_custom_op_flag_is_refused_by_a_target_that_does_not_take_it(tmp_path):
    onnx.save(_model(), str(tmp_path / "c.onnx"))
    with pytest.raises(nnport.InputError, match="does not apply to .param"):
        nnport.convert(str(tmp_path / "c.onnx"), tmp_path / "c.param", verify=False,
                       custom_ops={"my.ops::SoftClip": soft_clip})
