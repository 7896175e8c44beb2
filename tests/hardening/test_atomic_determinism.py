"""Atomic output (a killed or concurrent conversion never leaves a truncated or mixed pair) and
determinism (same input, same bytes, whatever PYTHONHASHSEED)."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

CONVERT = ("import sys, nnport; nnport.convert(sys.argv[1], sys.argv[2], verify=False); "
           "print('done')")


def _mlp(n_layers: int, width: int, seed: int) -> onnx.ModelProto:
    """Different seeds give different weights *and* different layer names, so a .py from one
    model cannot load the other's safetensors."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i in range(n_layers):
        w = f"w{seed}_{i}"
        inits.append(numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), w))
        nodes.append(helper.make_node("MatMul", [x, w], [f"h{i}"], name=f"fc{seed}_{i}"))
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"]))
        x = f"r{i}"
    g = helper.make_graph(nodes, f"mlp{seed}", [helper.make_tensor_value_info("x", T.FLOAT, ["N", width])],
                          [helper.make_tensor_value_info(x, T.FLOAT, ["N", width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _digest(path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _env(hashseed="0"):
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED=hashseed, PYTHONWARNINGS="ignore")


def _convert(src, dst, hashseed="0"):
    subprocess.run([sys.executable, "-c", CONVERT, str(src), str(dst)], check=True,
                   env=_env(hashseed), capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two ~34 MB models and the reference digests of their outputs."""
    d = tmp_path_factory.mktemp("atomic")
    refs = {}
    for seed in (1, 2):
        src = d / f"m{seed}.onnx"
        onnx.save(_mlp(8, 1024, seed), src)
        out = d / f"ref{seed}" / "model.py"
        out.parent.mkdir()
        _convert(src, out)
        refs[seed] = _state(out.parent)
    return d, refs


def _tensors_digest(path) -> str | None:
    """Digest of the tensors (names, dtypes, shapes, data), not of the header bytes: the header's
    metadata order is not deterministic (see the determinism test).  A truncated file does
    not load and says so."""
    if not path.exists():
        return None
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:
        return f"UNLOADABLE ({type(exc).__name__})"
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(f"{k}:{tensors[k].dtype}:{tensors[k].shape}".encode())
        h.update(np.ascontiguousarray(tensors[k]).tobytes())
    return h.hexdigest()


def _state(folder) -> tuple:
    return _digest(folder / "model.py"), _tensors_digest(folder / "model.safetensors")


def test_killed_conversion_leaves_previous_files_or_none(pair):
    d, refs = pair
    rng = random.Random(0)
    out = d / "killed"
    out.mkdir()
    allowed = {(None, None), refs[1], refs[2]}
    seen = set()
    for i in range(8):
        if i == 4:  # the second half starts from an existing pair of model 1
            _convert(d / "m1.onnx", out / "model.py")
        proc = subprocess.Popen([sys.executable, "-c", CONVERT, str(d / "m2.onnx"),
                                 str(out / "model.py")], env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 8.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = _state(out)
        seen.add(state)
        assert state in allowed, f"kill {i}: a truncated or mixed pair was left: {state}"
        if i < 4 and state != (None, None):
            for f in ("model.py", "model.safetensors"):
                (out / f).unlink()
    assert seen  # at least one outcome observed (which ones depends on timing)


def test_two_concurrent_conversions_do_not_mix(pair):
    d, refs = pair
    out = d / "concurrent"
    out.mkdir()
    for i in range(4):
        procs = [subprocess.Popen([sys.executable, "-c", CONVERT, str(d / f"m{s}.onnx"),
                                   str(out / "model.py")], env=_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for s in (1, 2)]
        for p in procs:
            assert p.wait(600) == 0
        assert _state(out) in {refs[1], refs[2]}, f"round {i}: .py and .safetensors of different runs"


def test_same_input_gives_identical_code_and_tensors_across_hash_seeds(tmp_path):
    from ._common import load_fuzz

    src = tmp_path / "m.onnx"
    # the control-flow + metadata seed models exercise dict/set ordering in the generator
    for k, data in enumerate(load_fuzz().seed_models()):
        src.write_bytes(data)
        states = set()
        for hashseed in ("1", "2", "12345"):
            out = tmp_path / f"o{k}_{hashseed}" / "model.py"
            out.parent.mkdir()
            _convert(src, out, hashseed)
            states.add(_state(out.parent))
        assert len(states) == 1, (k, states)


def test_safetensors_bytes_are_identical_across_runs(tmp_path):
    from ._common import load_fuzz

    src = tmp_path / "m.onnx"
    digests = set()
    for k, data in enumerate(load_fuzz().seed_models()):
        src.write_bytes(data)
        per_model = set()
        for hashseed in ("1", "2", "3"):
            out = tmp_path / f"o{k}_{hashseed}" / "model.py"
            out.parent.mkdir()
            _convert(src, out, hashseed)
            per_model.add(_digest(out.with_suffix(".safetensors")))
        digests.add(len(per_model))
    assert digests == {1}  # 12 runs agreeing by chance: about 1 in 2,000
