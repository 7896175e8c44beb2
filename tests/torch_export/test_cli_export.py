"""``nnport export`` and ``nnport convert`` with PyTorch sources, run as a subprocess."""
import onnx
import pytest

from util import assert_clean_error, run_cli as run

NET = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x, y):
        return torch.relu(self.conv(x)) + y, x.mean(dim=(2, 3))


def make():
    torch.manual_seed(0)
    return Net()


def broken():
    raise ValueError("weights missing")


def not_a_module():
    return 42


@torch.library.custom_op("nnport_cli::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.sin()


@mystery.register_fake
def _(x):
    return torch.empty_like(x)


class Mystery(torch.nn.Module):
    def forward(self, x):
        return mystery(x) * 2
'''

SHAPES = ["--input-shape", "x=1,3,16,16", "--input-shape", "y=1,4,16,16"]


@pytest.fixture()
def net(tmp_path):
    p = tmp_path / "net.py"
    p.write_text(NET)
    return p


def test_export_dynamic_two_inputs(net, tmp_path):
    dst = tmp_path / "out" / "m.onnx"
    dst.parent.mkdir()
    rc, out, err = run("export", f"{net}:make", dst, *SHAPES,
                       "--dynamic", "x=0:batch,2:height,3:width",
                       "--dynamic", "y=0:batch,2:height,3:width")
    assert rc == 0, (out, err)
    assert "MATCH" in out and "@x[2, 3, 32, 32]" in out
    m = onnx.load(str(dst))
    assert [i.name for i in m.graph.input] == ["x", "y"]
    assert [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] \
        == ["batch", 3, "height", "width"]
    assert [f.name for f in dst.parent.iterdir()] == ["m.onnx"]  # no temp files left


def test_convert_accepts_python_source_and_options(net, tmp_path):
    dst = tmp_path / "m.onnx"
    rc, out, err = run("convert", f"{net}:Net", dst, *SHAPES, "--exporter", "torchscript",
                       "--opset", "17", "--dynamic", "x=0:n", "--dynamic", "y=0:n",
                       "--check-shape", "x=3,3,16,16", "--check-shape", "y=3,4,16,16")
    assert rc == 0, (out, err)
    assert "@x[3, 3, 16, 16]" in out
    assert onnx.load(str(dst)).opset_import[0].version == 17


def test_check_reports_unsupported_ops(net):
    rc, out, err = run("export", f"{net}:Mystery", "--check", "--input-shape", "x=2,3")
    assert rc == 1, (out, err)
    assert "nnport_cli::mystery" in out and len(out.strip().splitlines()) == 1
    rc, out, err = run("export", f"{net}:make", "--check", *SHAPES)
    assert rc == 0 and "every op has an ONNX mapping" in out


@pytest.mark.parametrize("ref,extra,needles", [
    ("{net}:broken", SHAPES, ["factory 'broken' raised ValueError: weights missing"]),
    ("{net}:nothing", SHAPES, ["has no attribute 'nothing'"]),
    ("{net}:not_a_module", SHAPES, ["returned a int", "torch.nn.Module"]),
    ("no_such_pkg.models:make", SHAPES, ["cannot import module 'no_such_pkg.models'"]),
    ("{dir}/missing.py:make", SHAPES, ["no such file"]),
    ("{net}", SHAPES, ["expected path/to/file.py:factory"]),
    ("{net}:make", ["--input-shape", "x=1,3,16,16"], ["needs input 'y'", "--input-shape y="]),
    ("{net}:make", ["--input-shape", "x=1,3,a"], ["--input-shape", "'a' is not an integer"]),
    ("{net}:make", SHAPES + ["--input-shape", "z=1"], ["has no input 'z'"]),
    ("{net}:make", SHAPES + ["--dynamic", "x=0;batch"], ["--dynamic", "AXIS:DIMNAME"]),
    ("{net}:make", SHAPES + ["--dynamic", "x=7:batch"], ["axis 7 is out of range"]),
    ("{net}:make", ["--input-shape", "x=1,3,16,16", "--input-shape", "y=1,4,8,8"],
     ["running the model on example inputs", "failed"]),
    ("{net}:Mystery", ["--input-shape", "x=2,3"],
     ["nnport_cli::mystery", "custom_ops.register"]),
    ("{dir}/fake.pt", SHAPES, ["not a TorchScript file"]),
])
def test_bad_input_one_line_exit_2(net, tmp_path, ref, extra, needles):
    (tmp_path / "fake.pt").write_bytes(b"not torchscript")
    dst = tmp_path / "out.onnx"
    rc, out, err = run("export", ref.format(net=net, dir=tmp_path), dst, *extra)
    assert_clean_error(rc, out, err, *needles)
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.pt", "net.py"]


def test_onnx_to_torchscript_cli(net, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    rc, out, err = run("export", f"{net}:make", onnx_path, *SHAPES, "--dynamic", "x=0:b",
                       "--dynamic", "y=0:b")
    assert rc == 0, err
    rc, out, err = run("convert", onnx_path, tmp_path / "m.pt")
    assert rc == 0, (out, err)
    assert "MATCH" in out
    rc, out, err = run("verify", onnx_path, tmp_path / "m.pt", "--input-shape", "x=3,3,16,16",
                       "--input-shape", "y=3,4,16,16")
    assert rc == 0 and "MATCH" in out, (out, err)


def test_convert_custom_domain_node_with_custom_op_flag(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("SoftClip", ["x"], ["y"], domain="my.ops", limit=2.0)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("my.ops", 1)])
    onnx.save(m, str(tmp_path / "c.onnx"))
    (tmp_path / "ops.py").write_text("import torch\n\n\ndef soft_clip(x, limit=1.0):\n"
                                     "    return limit * torch.tanh(x / limit)\n")
    rc, out, err = run("convert", tmp_path / "c.onnx", tmp_path / "c.py", "--no-verify")
    assert_clean_error(rc, out, err, "my.ops::SoftClip")
    rc, out, err = run("convert", tmp_path / "c.onnx", tmp_path / "c.py", "--no-verify",
                       "--custom-op", f"my.ops::SoftClip={tmp_path / 'ops.py'}:soft_clip")
    assert rc == 0, err
    code = (tmp_path / "c.py").read_text()
    assert "def _custom_my_ops_SoftClip(x, limit=1.0):" in code and "limit=2.0" in code
    rc, out, err = run("convert", tmp_path / "c.onnx", tmp_path / "d.py", "--no-verify",
                       "--custom-op", "my.ops::SoftClip")
    assert_clean_error(rc, out, err, "--custom-op")
    assert not (tmp_path / "d.py").exists()
