"""PyTorch -> ONNX export through nnport.torch_export: sources, dynamic axes verified at a second
shape, exporter choice/fallback, custom ops, TorchScript outputs, and the ONNX round trip."""
import numpy as np
import onnx
import pytest
import torch

import nnport
from nnport.errors import ConversionError, InputError
from nnport.torch_export import check_exportable, custom_ops, export, export_proto
from tests.util import ort_run

from . import models


def _dims(path_or_proto, name):
    m = onnx.load(str(path_or_proto)) if not isinstance(path_or_proto, onnx.ModelProto) \
        else path_or_proto
    vi = next(i for i in m.graph.input if i.name == name)
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_two_inputs_two_outputs_dynamic(tmp_path):
    dst = tmp_path / "m.onnx"
    res = export(models.two_in_two_out(), dst,
                 input_shapes={"image": (1, 3, 16, 16), "bias": (1, 4, 16, 16)},
                 dynamic={"image": {0: "batch", 2: "h", 3: "w"},
                          "bias": {0: "batch", 2: "h", 3: "w"}})
    assert res.ok, res.report.lines()
    assert _dims(dst, "image") == ["batch", 3, "h", "w"]
    out_names = [o.name for o in onnx.load(str(dst)).graph.output]
    assert out_names == ["output_0", "output_1"]
    # both shapes were checked: 2 outputs x 2 shapes
    assert len(res.report.outputs) == 4
    assert any("@" in o.name and "[2, 3, 32, 32]" in o.name for o in res.report.outputs)


def test_check_shape_given(tmp_path):
    res = export(models.cnn_bn(), tmp_path / "c.onnx", input_shapes={"x": (1, 3, 16, 16)},
                 dynamic={"x": {0: "n", 2: "h", 3: "w"}}, check_shapes={"x": (3, 3, 24, 40)})
    assert res.ok
    assert any("[3, 3, 24, 40]" in o.name for o in res.report.outputs)


def test_dynamic_axis_that_became_static_is_caught(tmp_path):
    """dynamo specializes the batch (the ONNX input is static): the report must fail."""
    dst = tmp_path / "a.onnx"
    res = export(models.SpecializesOnBatch(), dst, input_shapes={"x": (1, 3, 4)},
                 dynamic={"x": {0: "batch"}})
    assert not res.ok
    notes = " ".join(o.note for o in res.report.outputs)
    assert "became static" in notes and "x[0]" in notes


def test_baked_constant_caught_at_second_shape(tmp_path):
    """The TorchScript exporter keeps the input dynamic but bakes the batch into a Reshape."""
    res = export(models.bakes_batch(), tmp_path / "b.onnx", input_shapes={"x": (1, 3, 4)},
                 dynamic={"x": {0: "batch"}}, exporter="torchscript")
    assert not res.ok
    first = [o for o in res.report.outputs if "@" not in o.name]
    second = [o for o in res.report.outputs if "@" in o.name]
    assert all(o.ok for o in first) and second and not any(o.ok for o in second)
    # dynamo specializes int(x.shape[0]) too, and says so
    res = export(models.bakes_batch(), tmp_path / "c.onnx", input_shapes={"x": (1, 3, 4)},
                 dynamic={"x": {0: "batch"}})
    assert not res.ok and "became static" in " ".join(o.note for o in res.report.outputs)


def test_fallback_to_torchscript_with_reason(tmp_path, capsys):
    torch.manual_seed(0)
    res = export(models.DataDependent(), tmp_path / "d.onnx", input_shapes={"x": (2, 3)})
    assert res.notes[0].startswith("dynamo exporter failed (")
    assert "falling back to the TorchScript exporter" in capsys.readouterr().err
    assert "exported with the TorchScript exporter" in res.notes
    with pytest.raises(ConversionError, match="dynamo exporter failed"):
        export(models.DataDependent(), tmp_path / "e.onnx", input_shapes={"x": (2, 3)},
               exporter="dynamo")
    assert not (tmp_path / "e.onnx").exists()


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_exporter_choice(tmp_path, exporter):
    res = export(models.cnn_bn(), tmp_path / "e.onnx", input_shapes={"x": (2, 3, 8, 8)},
                 exporter=exporter, dynamic={"x": {0: "batch"}})
    assert res.ok
    assert f"exported with the {'TorchScript' if exporter == 'torchscript' else 'dynamo'}" \
        in " ".join(res.notes)
    assert _dims(tmp_path / "e.onnx", "x")[0] == "batch"


def test_simplify_folds_shape_chains():
    class M(torch.nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1) * 2

    raw, _, _ = export_proto(M(), input_shapes={"x": (2, 3, 4)}, exporter="torchscript",
                             simplify_model=False)
    simp, _, _ = export_proto(M(), input_shapes={"x": (2, 3, 4)}, exporter="torchscript")
    assert len(simp.graph.node) < len(raw.graph.node)
    assert not any(n.op_type in ("Shape", "Gather") for n in simp.graph.node)


# ----- custom ops ---------------------------------------------------------------------------
@torch.library.custom_op("nnport_test::softclip", mutates_args=())
def softclip(x: torch.Tensor, limit: float) -> torch.Tensor:
    return limit * torch.tanh(x / limit)


@softclip.register_fake
def _(x, limit):
    return torch.empty_like(x)


class UsesSoftclip(torch.nn.Module):
    def forward(self, x):
        return softclip(x, 3.0) + 1


def test_unknown_op_is_named_and_points_to_hook(tmp_path):
    dst = tmp_path / "u.onnx"
    with pytest.raises(ConversionError) as err:
        export(UsesSoftclip(), dst, input_shapes={"x": (2, 5)}, exporter="dynamo")
    msg = str(err.value)
    assert "nnport_test::softclip" in msg and "custom_ops.register" in msg
    assert not dst.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ConversionError, match="nnport_test::softclip.*register_symbolic"):
        export(UsesSoftclip(), dst, input_shapes={"x": (2, 5)}, exporter="torchscript")
    assert not list(tmp_path.iterdir())


def test_check_exportable_lists_unsupported(capsys):
    missing = check_exportable(UsesSoftclip(), (torch.randn(2, 5),))
    assert missing == ["nnport_test::softclip"]
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "nnport_test::softclip" in line
    assert check_exportable(models.cnn_bn(), (torch.randn(1, 3, 8, 8),)) == []


def test_custom_translation_to_standard_onnx(tmp_path):
    from onnxscript import opset18 as op

    def softclip_onnx(x, limit: float):
        lim = op.CastLike(op.Constant(value_float=limit), x)
        return op.Mul(lim, op.Tanh(op.Div(x, lim)))

    custom_ops.register(torch.ops.nnport_test.softclip.default, softclip_onnx)
    try:
        res = export(UsesSoftclip(), tmp_path / "s.onnx", input_shapes={"x": (2, 5)},
                     dynamic={"x": {0: "batch"}})
    finally:
        custom_ops.unregister(torch.ops.nnport_test.softclip.default)
    assert res.ok, res.report.lines()
    ops = [n.op_type for n in onnx.load(str(tmp_path / "s.onnx")).graph.node]
    assert "Tanh" in ops


def test_custom_symbolic_for_torchscript_exporter(tmp_path):
    def softclip_symbolic(g, x, limit):
        lim = g.op("Constant", value_t=torch.tensor(3.0))
        return g.op("Mul", lim, g.op("Tanh", g.op("Div", x, lim)))

    custom_ops.register_symbolic("nnport_test::softclip", softclip_symbolic, opset=9)
    try:
        res = export(UsesSoftclip(), tmp_path / "t.onnx", input_shapes={"x": (2, 5)},
                     exporter="torchscript", dynamic={"x": {0: "batch"}})
    finally:
        custom_ops.unregister("nnport_test::softclip")
    assert res.ok, res.report.lines()
    assert "Tanh" in [n.op_type for n in onnx.load(str(tmp_path / "t.onnx")).graph.node]


def test_custom_domain_node_round_trips_through_torch_emit(tmp_path):
    """torch op -> custom-domain ONNX node -> nnport.torch_emit.custom -> user code again."""
    from nnport.torch_emit import custom

    SoftClip = custom_ops.custom_node("nnport.test", "SoftClip", attributes={"limit": float})

    def softclip_onnx(x, limit: float):
        return SoftClip(x, limit=limit)

    def soft_clip(x, limit=1.0):
        return limit * torch.tanh(x / limit)

    proto, _, _ = export_proto(UsesSoftclip(), input_shapes={"x": (2, 5)},
                               custom={torch.ops.nnport_test.softclip.default: softclip_onnx})
    assert any(n.domain == "nnport.test" for n in proto.graph.node)
    custom.register("nnport.test", "SoftClip", soft_clip)
    try:
        from nnport.convert import generate_torch

        source, _ = generate_torch(proto)
        assert "def _custom_nnport_test_SoftClip(x, limit=1.0)" in source
        assert "import nnport" not in source
        module = nnport.to_torch(proto)
    finally:
        custom.unregister("nnport.test", "SoftClip")
    x = torch.randn(2, 5) * 4
    torch.testing.assert_close(module(x), UsesSoftclip()(x))


def test_custom_domain_import_form():
    from onnx import TensorProto, helper

    from nnport.torch_emit import custom

    node = helper.make_node("Gelu2", ["x"], ["y"], domain="my.ops", approximate="tanh")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("my.ops", 1)])
    with pytest.raises(nnport.UnsupportedOpsError, match="my.ops::Gelu2"):
        nnport.to_torch(m)
    custom.register("my.ops", "Gelu2", "torch.nn.functional:gelu")
    try:
        from nnport.convert import generate_torch

        source, _ = generate_torch(m)
        assert "from torch.nn.functional import gelu as _custom_my_ops_Gelu2" in source
        module = nnport.to_torch(m)
    finally:
        custom.unregister("my.ops", "Gelu2")
    x = torch.randn(3)
    torch.testing.assert_close(module(x), torch.nn.functional.gelu(x, approximate="tanh"))


def test_custom_registration_errors():
    from nnport.torch_emit import custom

    with pytest.raises(InputError):
        custom.register("", "Relu", lambda x: x)
    with pytest.raises(InputError, match="plain def"):
        custom.register("my.ops", "X", lambda x: x)
    with pytest.raises(InputError):
        custom.register("my.ops", "X", "not a ref")


# ----- other sources and TorchScript output ---------------------------------------------------
def test_torchscript_and_program_sources(tmp_path):
    m = models.cnn_bn()
    ts = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(m), str(ts))
    res = export(str(ts), tmp_path / "a.onnx", input_shapes={"x": (1, 3, 8, 8)})
    assert res.ok and "TorchScript source" in " ".join(res.notes)
    ep = torch.export.export(m, (torch.randn(2, 3, 8, 8),),
                             dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    pt2 = tmp_path / "m.pt2"
    torch.export.save(ep, str(pt2))
    res = export(str(pt2), tmp_path / "b.onnx")
    assert res.ok
    assert len(res.report.outputs) == 2  # example shape and a second batch size
    assert isinstance(_dims(tmp_path / "b.onnx", "x")[0], str)  # symbolic (names are not saved)
    rep = nnport.verify(str(tmp_path / "b.onnx"), str(pt2), input_shapes={"x": (3, 3, 8, 8)})
    assert rep.ok  # the .pt2 runner


def test_onnx_to_torchscript(tmp_path):
    proto, _, _ = export_proto(models.cnn_bn(), input_shapes={"x": (1, 3, 8, 8)},
                               dynamic={"x": {0: "batch"}})
    onnx.save(proto, str(tmp_path / "m.onnx"))
    res = nnport.convert(str(tmp_path / "m.onnx"), tmp_path / "m.pt",
                         input_shapes={"x": (2, 3, 8, 8)})
    assert res.ok
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    ref = ort_run(proto, {"x": x})[0]
    got = loaded(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # and the verify runner for .pt files
    rep = nnport.verify(str(tmp_path / "m.onnx"), str(tmp_path / "m.pt"),
                        input_shapes={"x": (1, 3, 8, 8)})
    assert rep.ok


def test_convert_dispatches_python_sources(tmp_path):
    src = tmp_path / "net.py"
    src.write_text("import torch\n"
                   "def make():\n"
                   "    torch.manual_seed(0)\n"
                   "    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())\n")
    res = nnport.convert(f"{src}:make", tmp_path / "o.onnx", input_shapes={"input": (2, 4)},
                         dynamic={"input": {0: "batch"}})
    assert res.ok and (tmp_path / "o.onnx").exists()
    res = nnport.convert("torch.nn:Hardswish", tmp_path / "h.onnx", input_shapes={"input": (2, 4)})
    assert res.ok  # package.module:Class


# ----- round trip: ONNX -> model.py -> ONNX ----------------------------------------------------
@pytest.mark.parametrize("name,shape", [("cnn_bn", (2, 3, 16, 16)), ("encoder", (2, 5, 16)),
                                        ("lstm", (2, 7, 8))])
def test_round_trip(name, shape):
    original, _, _ = export_proto(getattr(models, name)(), input_shapes={"x": shape},
                                  dynamic={"x": {0: "batch"}})
    module = nnport.to_torch(original)
    again, _, _ = export_proto(module, input_shapes={"x": shape}, dynamic={"x": {0: "batch"}})
    assert _dims(again, "x")[0] == "batch"
    rng = np.random.default_rng(0)
    for batch in (shape[0], shape[0] + 1):
        x = rng.standard_normal((batch, *shape[1:])).astype(np.float32)
        a = ort_run(original, {"x": x})[0]
        b = ort_run(again, {"x": x})[0]
        with torch.no_grad():
            t = getattr(models, name)()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(a, t, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_output_names_and_python_source_to_torchscript(tmp_path):
    res = export(models.two_in_two_out(), tmp_path / "n.onnx",
                 input_shapes={"image": (1, 3, 8, 8), "bias": (1, 4, 8, 8)},
                 output_names=["features", "peaks"])
    assert res.ok
    assert [o.name for o in onnx.load(str(tmp_path / "n.onnx")).graph.output] == \
        ["features", "peaks"]
    with pytest.raises(InputError, match="1 name"):
        export(models.two_in_two_out(), tmp_path / "x.onnx",
               input_shapes={"image": (1, 3, 8, 8), "bias": (1, 4, 8, 8)},
               output_names=["only_one"])
    assert not (tmp_path / "x.onnx").exists()
    # a Python module straight to TorchScript, verified against itself
    src = tmp_path / "lin.py"
    src.write_text("import torch\n\ndef make():\n    return torch.nn.Linear(4, 2)\n")
    res = nnport.convert(f"{src}:make", tmp_path / "lin.pt", input_shapes={"input": (3, 4)})
    assert res.ok and torch.jit.load(str(tmp_path / "lin.pt"))(torch.ones(1, 4)).shape == (1, 2)


def test_onnx_source_to_onnx_is_simplified_and_verified(tmp_path):
    class M(torch.nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1) * 2

    raw, _, _ = export_proto(M(), input_shapes={"x": (2, 3, 4)}, exporter="torchscript",
                             simplify_model=False)
    onnx.save(raw, str(tmp_path / "raw.onnx"))
    res = nnport.convert(str(tmp_path / "raw.onnx"), tmp_path / "simple.onnx")
    assert res.ok
    assert len(onnx.load(str(tmp_path / "simple.onnx")).graph.node) < len(raw.graph.node)
    with pytest.raises(InputError, match="already ONNX"):
        nnport.convert(str(tmp_path / "raw.onnx"), tmp_path / "d.onnx",
                       dynamic={"x": {0: "b"}})
