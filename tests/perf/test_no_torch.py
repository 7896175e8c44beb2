"""``nnport convert --no-verify`` to .py never imports torch (its import is a second or more of
every conversion), and what it writes is what the torch-importing path writes: the generated
module loads and matches onnxruntime.  Also the torch-free pieces it relies on: the helper
sources read with ``ast``, the safetensors writer's worker thread."""
from __future__ import annotations

import inspect
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from nnport.errors import ConversionError
from nnport.torch_emit import helpers
from nnport.torch_emit import st_writer
from nnport.torch_emit.codegen import Transposed
from nnport.verify.torch_runner import load_generated

# torch made unimportable: ``import torch`` anywhere raises ImportError
_NO_TORCH = ("import sys; sys.modules['torch'] = None; from nnport.cli import main; "
             "rc = main(sys.argv[1:]); "
             "assert not [m for m in sys.modules if m.startswith('torch') and sys.modules[m]]; "
             "sys.exit(rc)")


def _model(folder: Path) -> Path:
    """Conv with SAME padding (the static pad arithmetic), MatMul+bias (an nn.Linear whose
    weight is written transposed), Slice with a run-time end (a copied helper), fp16 and int64
    constants, and weights in an external-data file."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    lin = rng.standard_normal((64, 40), dtype=np.float32)
    inits = [numpy_helper.from_array(w, "conv_w"),
             numpy_helper.from_array(lin, "lin_w"),
             numpy_helper.from_array(rng.standard_normal(40).astype(np.float32), "lin_b"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             numpy_helper.from_array(np.full((1, 40), 0.5, np.float16), "half"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("Reshape", ["c", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "lin_w"], ["m"]),
        helper.make_node("Add", ["m", "lin_b"], ["y0"]),
        helper.make_node("Cast", ["half"], ["h32"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["y0", "h32"], ["y1"]),
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Gather", ["xs", "one"], ["n_ch"], axis=0),
        helper.make_node("Slice", ["y1", "zero", "n_ch", "one"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "small.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="small.bin",
              size_threshold=256)
    return path


def test_convert_without_torch_writes_a_working_module(tmp_path):
    src = _model(tmp_path)
    out = tmp_path / "out" / "model.py"
    out.parent.mkdir()
    r = subprocess.run([sys.executable, "-c", _NO_TORCH, "convert", str(src), str(out),
                        "--no-verify", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # nothing but the two outputs (no temporary or lock files), with a normal file mode
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.py", "model.safetensors"]
    mask = os.umask(0)
    os.umask(mask)
    for p in out.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    module = load_generated(out)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bad_input_without_torch_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    r = subprocess.run([sys.executable, "-c", _NO_TORCH, "convert", str(bad),
                        str(tmp_path / "m.py"), "--no-verify"], capture_output=True, text=True)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.onnx" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


@pytest.mark.parametrize("module", helpers._MODULES)
def test_helper_sources_read_with_ast_equal_the_functions(module):
    """The generated file gets exactly the source of the tested function, and its deps."""
    import importlib

    mod = importlib.import_module(f"nnport.torch_emit.helpers.{module}")
    for name in mod.__all__:
        fn = getattr(mod, name)
        if getattr(fn, "__module__", None) != mod.__name__:
            continue  # re-exported from another helper file
        text, deps = helpers.source(name)
        assert text == inspect.getsource(fn), name
        assert deps == tuple(getattr(fn, "_nnport_deps", ())), name
        assert getattr(helpers, name) is fn


def test_every_helper_dependency_exists():
    index = helpers._index()
    for name, (_mod, _text, deps) in index.items():
        assert all(d in index for d in deps), (name, deps)


# ----- the safetensors writer -------------------------------------------------------------
def _external(tmp_path, arr: np.ndarray, name="w"):
    """An onnx_ir ExternalTensor for ``arr`` stored at an odd offset of a file."""
    import onnx_ir as ir

    path = tmp_path / f"{name}.bin"
    path.write_bytes(b"\0" * 24 + arr.tobytes())
    return ir.ExternalTensor(path.name, offset=24, length=arr.nbytes,
                             dtype=ir.DataType.from_numpy(arr.dtype), shape=ir.Shape(arr.shape),
                             name=name, base_dir=str(tmp_path))


@pytest.mark.parametrize("chunk", [None, 4096])
def test_writer_transposes_external_weights(tmp_path, monkeypatch, chunk):
    """Transposed weights from a file, both as one step and (chunk=4096 bytes) as column
    blocks of a mapping; results equal numpy's transpose bit for bit."""
    from safetensors.numpy import load_file

    if chunk:
        monkeypatch.setattr(st_writer, "_CHUNK", chunk)
    rng = np.random.default_rng(0)
    arrays = {"a": rng.standard_normal((37, 53)).astype(np.float32),
              "b": rng.standard_normal((64, 17)).astype(np.float16),
              "c": rng.integers(-9, 9, (5, 300)).astype(np.int64)}
    state = {k: Transposed(_external(tmp_path, v, k)) for k, v in arrays.items()}
    state["plain"] = _external(tmp_path, arrays["a"], "plain")
    state["inline"] = Transposed(arrays["b"])
    p = tmp_path / "x.safetensors"
    st_writer.write_safetensors(state, p)
    got = load_file(str(p))
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v.T), k
    assert np.array_equal(got["plain"], arrays["a"])
    assert np.array_equal(got["inline"], arrays["b"].T)


def test_writer_odd_types_match_torch(tmp_path):
    """bfloat16/float8 are written as the bytes torch holds; int4 widened to int8."""
    import ml_dtypes
    from safetensors.torch import load_file

    vals = np.array([0.5, -1.25, 3.0, 448.0], np.float32)
    state = {"bf": vals.astype(ml_dtypes.bfloat16), "f8": vals.astype(ml_dtypes.float8_e4m3fn),
             "i4": np.array([-8, 7, 0, 3], dtype=ml_dtypes.int4),
             "t": torch.tensor([1.5, 2.0], dtype=torch.bfloat16)}
    p = tmp_path / "x.safetensors"
    st_writer.write_safetensors(state, p)
    got = load_file(str(p))
    assert torch.equal(got["bf"], torch.from_numpy(vals).to(torch.bfloat16))
    assert torch.equal(got["f8"].float(), torch.from_numpy(vals).to(torch.float8_e4m3fn).float())
    assert got["i4"].dtype == torch.int8 and got["i4"].tolist() == [-8, 7, 0, 3]
    assert torch.equal(got["t"], state["t"])
    header = json.loads(p.read_bytes()[8:8 + int.from_bytes(p.read_bytes()[:8], "little")])
    assert header["bf"]["dtype"] == "BF16" and header["f8"]["dtype"] == "F8_E4M3"


def test_writer_error_in_worker_is_raised_and_the_thread_ends(tmp_path):
    import threading

    arr = np.ones((16, 16), np.float32)
    short = _external(tmp_path, arr, "short")
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)  # truncated after the tensor was made
    state = {f"a{i}": np.ones(1000, np.float32) for i in range(8)}
    state["z"] = Transposed(short)
    before = threading.active_count()
    with pytest.raises(ConversionError, match="short"):
        st_writer.write_safetensors(state, tmp_path / "x.safetensors")
    assert threading.active_count() == before


def test_writer_unsupported_type_names_the_weight(tmp_path):
    import ml_dtypes

    with pytest.raises(ConversionError, match="'odd'.*float8_e4m3fnuz"):
        st_writer.write_safetensors({"odd": np.zeros(2, ml_dtypes.float8_e4m3fnuz)},
                                    tmp_path / "x.safetensors")


def test_convert_to_ncnn_without_verification_never_imports_torch(tmp_path):
    """The ncnn target asks whether its source is a PyTorch model; for an ONNX file that
    question must not import torch (seconds of every conversion, more than the conversion)."""
    src = tmp_path / "conv.onnx"
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    out = tmp_path / "out" / "model.param"
    # torch importable here (an ImportError would hide the import): it must not be imported
    script = ("import sys; from nnport.cli import main; rc = main(sys.argv[1:]); "
              "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", script, "convert", str(src), str(out),
                        "--no-verify", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.with_suffix(".bin").is_file()
