"""nnport simplify: each pass verified in onnxruntime; a wrong pass is named and discarded."""

import numpy as np
import onnx
import pytest

import nnport
from nnport.passes.simplify.fuse_bn import fuse_bn_into_conv
from nnport.passes.normalize.noop import eliminate_noops
from nnport.tools.simplify import DEFAULT_PASSES, simplify
from tools.cnn import cnn_model

from util import run_cli as run


def ops(model):
    return [n.op_type for n in model.graph.node]


def test_default_pipeline_with_fixed_input_shape_folds_everything():
    res = simplify(cnn_model(), input_shapes={"x": (2, 3, 32, 32)})
    left = ops(res.model)
    for gone in ("Identity", "Dropout", "Cast", "Pad", "Expand", "Transpose", "Shape", "Gather",
                 "Unsqueeze", "Concat", "BatchNormalization"):
        assert gone not in left, (gone, left)
    assert sorted(left) == sorted(["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool",
                                   "Reshape", "Gemm", "Softmax"])
    assert not res.rejected
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    rep = nnport.verify(cnn_model(), res.model, input_shapes={"x": (2, 3, 32, 32)}, seed=3)
    assert rep.ok, rep.lines()
    assert feeds  # same inputs path as the CLI


def test_dynamic_batch_keeps_shape_chain_but_removes_noops():
    res = simplify(cnn_model())
    left = ops(res.model)
    assert "Shape" in left  # batch is symbolic: the chain must stay
    assert "Identity" not in left and "Dropout" not in left and "Expand" not in left
    assert res.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert nnport.verify(cnn_model(), res.model, input_shapes={"x": (3, 3, 32, 32)}).ok


def test_our_passes_alone_fuse_bn_and_remove_noops():
    res = simplify(cnn_model(), passes=[("eliminate_noops", eliminate_noops),
                                        ("fuse_bn_into_conv", fuse_bn_into_conv)])
    left = ops(res.model)
    assert "BatchNormalization" not in left
    for gone in ("Identity", "Dropout", "Cast", "Pad", "Expand", "Transpose"):
        assert gone not in left, (gone, left)
    applied = [s.name for s in res.steps if s.status == "applied"]
    assert "fuse_bn_into_conv" in applied and "eliminate_noops" in applied
    assert nnport.verify(cnn_model(), res.model).ok


def _break_relu(model):
    """A deliberately wrong pass: turns the first Relu into a Sigmoid."""
    for node in model.graph:
        if node.op_type == "Relu":
            node.op_type = "Sigmoid"
            return


def _crash(model):
    raise RuntimeError("pass bug")


def test_wrong_pass_is_named_and_its_change_discarded():
    res = simplify(cnn_model(), input_shapes={"x": (1, 3, 32, 32)},
                   passes=[DEFAULT_PASSES[0], ("break_relu", _break_relu), ("crash", _crash),
                           *DEFAULT_PASSES[1:]])
    bad = {s.name: s for s in res.rejected}
    assert set(bad) == {"break_relu", "crash"}
    assert bad["break_relu"].status == "diverged" and "prob" in bad["break_relu"].detail
    assert bad["crash"].status == "failed" and "pass bug" in bad["crash"].detail
    assert "Sigmoid" not in ops(res.model) and ops(res.model).count("Relu") == 2
    # the passes after the broken one still ran on the unbroken model
    assert "Identity" not in ops(res.model)
    assert nnport.verify(cnn_model(), res.model, input_shapes={"x": (1, 3, 32, 32)}).ok


def test_wrong_pass_through_extra_passes():
    res = simplify(cnn_model(), extra_passes=[_break_relu])
    assert [s.name for s in res.rejected] == ["_break_relu"] * len(res.rejected) and res.rejected
    assert nnport.verify(cnn_model(), res.model).ok


def test_cli_simplify_prints_counts_and_writes(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(cnn_model(), src)
    rc, out, err = run("simplify", src, tmp_path / "s.onnx", "--input-shape", "x=1,3,32,32")
    assert rc == 0, err
    assert "20 -> 9 nodes" in out and "BatchNormalization" in out
    assert onnx.load(tmp_path / "s.onnx").graph.node
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("args,needle", [
    (["--input-shape", "nope=1,3,32,32"], "nope"),
    (["--input-shape", "x=1,3,32"], "rank"),
])
def test_cli_simplify_bad_input(tmp_path, args, needle):
    src = tmp_path / "m.onnx"
    onnx.save(cnn_model(), src)
    rc, out, err = run("simplify", src, tmp_path / "s.onnx", *args)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert not (tmp_path / "s.onnx").exists()


def test_cli_simplify_missing_file(tmp_path):
    rc, out, err = run("simplify", tmp_path / "none.onnx", tmp_path / "s.onnx")
    assert rc == 2 and "no such file" in err


def test_file_read_lean_is_simplified_and_written_whole(tmp_path):
    """A file over 1 MB is simplified with its weights left in it (references through every
    pass and verification) and written from it: the output stands alone and matches."""
    from onnx import TensorProto, helper, numpy_helper

    proto = cnn_model(batch=2)
    rng = np.random.default_rng(5)
    big = numpy_helper.from_array(rng.standard_normal((600, 600)).astype(np.float32), "big")
    proto.graph.initializer.append(big)
    proto.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 600]))
    proto.graph.node.extend([helper.make_node("Identity", ["big"], ["big_id"]),
                             helper.make_node("MatMul", ["z", "big_id"], ["zm"]),
                             helper.make_node("Relu", ["zm"], ["zo"])])
    proto.graph.output.append(helper.make_tensor_value_info("zo", TensorProto.FLOAT, [4, 600]))
    src, dst = tmp_path / "in" / "m.onnx", tmp_path / "out.onnx"
    src.parent.mkdir()
    onnx.save(proto, src)
    assert src.stat().st_size > 1 << 20
    res = simplify(src, dst)
    assert not res.rejected
    left = ops(onnx.load(dst))
    assert "BatchNormalization" not in left and "Identity" not in left
    import onnxruntime as ort

    feeds = {"x": rng.standard_normal((2, 3, 32, 32)).astype(np.float32),
             "z": rng.standard_normal((4, 600)).astype(np.float32)}
    want = ort.InferenceSession(str(src)).run(None, feeds)
    got = ort.InferenceSession(str(dst)).run(None, feeds)  # no reference back into src
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert res.model.graph.initializer and all(
        t.data_location == TensorProto.DEFAULT for t in res.model.graph.initializer)
