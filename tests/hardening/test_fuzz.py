"""Fuzzing (benchmarks/fuzz.py): mutated model bytes and random valid models through inspect,
generate, convert and verify.  Every outcome is a result or a one-line NnportError; each case
runs in a worker process, so a crash or a hang is detected, not suffered."""
from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from ._common import load_fuzz

fz = load_fuzz()
SEEDS = fz.seed_models()

# Failures already found whose fix is in a core file this suite may not touch; each has a strict
# xfail test below.  Remove an entry when its fix lands (matched by exception type and file).
KNOWN_CORE_BUGS: set = set()  # core fixes landed; keep the mechanism for new findings


def _allowed(outcome: str) -> bool:
    if not outcome.startswith("failure:"):
        return True
    sig = outcome[len("failure:"):]
    parts = sig.split(" at ")
    return len(parts) == 2 and (parts[0], parts[1].split(":")[0]) in KNOWN_CORE_BUGS


@pytest.fixture(scope="module")
def worker():
    w = fz.Worker(mem_limit=6 << 30, timeout=60)
    yield w
    w.close()


def _action(rng: random.Random) -> str:
    r = rng.random()
    return "verify" if r < 0.05 else "convert" if r < 0.2 else "generate" if r < 0.5 else "inspect"


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_mutated_bytes(worker, rng):
    case = {"kind": "bytes", "data": fz.mutate(rng, rng.choice(SEEDS), SEEDS),
            "action": _action(rng)}
    res = worker.run(case)
    assert _allowed(res["outcome"]), f"{res['outcome']}\n{res['detail']}"


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_random_models(worker, rng):
    case = {"kind": "model", "data": fz.random_model(rng), "action": _action(rng)}
    res = worker.run(case)
    assert _allowed(res["outcome"]), f"{res['outcome']}\n{res['detail']}"


_MORE = ("ncnn", "verify_ncnn", "simplify", "extract", "edit")


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_ncnn_and_tools(worker, rng):
    """The ncnn target and simplify/extract/edit, on both case families (contrib and ml ops
    among the random models)."""
    kind = rng.choice(["bytes", "model"])
    data = fz.mutate(rng, rng.choice(SEEDS), SEEDS) if kind == "bytes" else fz.random_model(rng)
    case = {"kind": kind, "data": data, "action": rng.choice(_MORE),
            "param": rng.randrange(2**32)}
    res = worker.run(case)
    assert _allowed(res["outcome"]), f"{res['outcome']}\n{res['detail']}"


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_export_random_pytorch_modules(worker, rng):
    case = {"kind": "torch", "data": fz.random_torch(rng), "action": "export",
            "param": rng.randrange(2**32)}
    res = worker.run(case)
    assert _allowed(res["outcome"]), f"{res['outcome']}\n{res['detail']}"


def test_every_action_is_drawn():
    """The default mix reaches every action and all three case families."""
    import collections

    seen = collections.Counter()
    for i in range(3000):
        case = fz.make_case(random.Random(f"7:{i}"), SEEDS)
        seen[case["action"]] += 1
        seen[case["kind"]] += 1
    for name in (*fz.ACTIONS, "bytes", "model", "torch"):
        assert seen[name] > 0, (name, seen)
    domains = collections.Counter()
    for i in range(300):
        m = onnx.load_from_string(fz.random_model(random.Random(i)))
        domains.update(n.domain for n in m.graph.node)
    assert domains["com.microsoft"] > 0 and domains["ai.onnx.ml"] > 0, domains


def test_batch_on_two_workers(tmp_path):
    """The benchmark driver itself: 1,500 seeded cases on 2 workers, reproducers saved."""
    res = fz.fuzz(1500, seed=12345, workers=2, out=str(tmp_path / "findings"),
                  mem_limit=6 << 30)
    assert sum(res["counts"].values()) == 1500
    assert any(k == "ok" for k in res["counts"]) and any(k.startswith("error:")
                                                        for k in res["counts"])
    bad = {k: v for k, v in res["failures"].items() if not _allowed(k)}
    assert not bad, bad
    for f in res["failures"].values():  # every failure comes with a reproducer on disk
        assert (tmp_path / "findings").joinpath(f["reproducer"].split("/")[-1]).exists()


def test_mismatch_keeps_a_reproducer(tmp_path, monkeypatch):
    """A verify case whose outputs disagree is still the outcome ``mismatch``, and it is saved
    like a failure: the model, the action and --param to replay it, the verify report lines."""
    import nnport
    from nnport.verify import VerifyReport, compare_arrays

    def bad_verify(a, b, **kw):
        rep = VerifyReport(str(a), str(b), {"x": {"shape": [2], "dtype": "float32"}})
        rep.outputs.append(compare_arrays("y", np.zeros(2, np.float32), np.ones(2, np.float32)))
        return rep

    monkeypatch.setattr(nnport, "verify", bad_verify)
    work = tmp_path / "work"
    work.mkdir()
    case = {"kind": "bytes", "data": SEEDS[0], "action": "verify", "param": 7, "index": 3}
    res = fz.run_case(case, str(work))
    assert res["outcome"] == "mismatch", res
    assert "y float32[2]: max_abs=1" in res["detail"] and "MISMATCH" in res["detail"]
    path = fz.save_reproducer(tmp_path / "out", case, res)
    other = fz.save_reproducer(tmp_path / "out", dict(case, action="verify_ncnn"), res)
    assert path != other  # every mismatch has its own file (failures: one per signature)
    text = path.with_suffix(".txt").read_text()
    assert path.read_bytes() == SEEDS[0]
    assert "outcome: mismatch" in text and "case: 3" in text
    assert f"--replay {path} --action verify --param 7" in text and "max_abs=1" in text


def test_worker_detects_crash_and_hang(worker):
    """The harness can fail: a segfault and a hang are reported as failures, then the worker is
    replaced and goes on."""
    crash = worker.run({"kind": "x", "data": b"", "action": "__crash__"})
    assert crash["outcome"].startswith("failure:crash"), crash
    ok = worker.run({"kind": "bytes", "data": SEEDS[0], "action": "inspect"})
    assert ok["outcome"] == "ok", ok
    bad = worker.run({"kind": "bytes", "data": b"\x08", "action": "inspect"})
    assert bad["outcome"] == "error:InputError", bad


def test_timeout_is_reported(tmp_path):
    w = fz.Worker(mem_limit=6 << 30, timeout=1)
    try:
        res = w.run({"kind": "x", "data": b"", "action": "__hang__"})
        assert res["outcome"] == "failure:timeout", res
    finally:
        w.close()


# ---- failures found by the fuzzer: fixed in op emitters (regressions) -------------------------

def _run(worker, model: onnx.ModelProto, action="verify"):
    return worker.run({"kind": "model", "data": model.SerializeToString(), "action": action})


def test_conv_transpose_kernel_shape_disagreeing_with_weight(worker):
    w = numpy_helper.from_array(np.ones((2, 3, 4, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("ConvTranspose", ["x", "w"], ["y"],
                                            kernel_shape=[2, 1])], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", T.FLOAT, None)], [w])
    res = _run(worker, helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]))
    assert res["outcome"] == "error:ConversionError" and "kernel_shape [2, 1]" in res["detail"]


def test_batchnorm_with_non_vector_parameters(worker):
    p = numpy_helper.from_array(np.ones((1, 2, 1), np.float32), "p")
    g = helper.make_graph([helper.make_node("BatchNormalization", ["x", "p", "p", "p", "p"], ["y"])],
                          "g", [helper.make_tensor_value_info("x", T.FLOAT, [1, 2, 3])],
                          [helper.make_tensor_value_info("y", T.FLOAT, None)], [p])
    res = _run(worker, helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]))
    assert res["outcome"] == "error:ConversionError" and "1-D" in res["detail"], res


def test_instance_norm_with_non_vector_parameters(worker):
    x = numpy_helper.from_array(np.ones((4, 4, 4, 4), np.float32), "x")
    b = numpy_helper.from_array(np.ones((3, 4, 1, 2), np.float32), "b")
    g = helper.make_graph([helper.make_node("InstanceNormalization", ["x", "x", "b"], ["y"])],
                          "g", [], [helper.make_tensor_value_info("y", T.FLOAT, None)], [x, b])
    res = _run(worker, helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert res["outcome"] == "error:ConversionError" and "1-D" in res["detail"], res


def test_slice_with_absurd_axis_does_not_hang(worker):
    i = lambda n, v: numpy_helper.from_array(np.array(v, np.int64), n)  # noqa: E731
    g = helper.make_graph([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4])],
                          [helper.make_tensor_value_info("y", T.FLOAT, None)],
                          [i("s", [1]), i("e", [3]), i("a", [5066549580791810])])
    res = _run(worker, helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
               "generate")
    assert res["outcome"] == "error:ConversionError" and "out of range" in res["detail"], res


# ---- failures found by the fuzzer whose fix is in core files -------------------------------

def _relu_model():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("action", ["inspect", "convert"])
def test_non_utf8_op_type(worker, action):
    data = _relu_model().SerializeToString().replace(b"Relu", b"R\xf3lu")
    res = worker.run({"kind": "bytes", "data": data, "action": action})
    assert res["outcome"] == "error:InputError", res


def test_raw_data_size_mismatch(worker):
    t = onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[5, 1], raw_data=b"\0" * 120)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, ["B", 5])],
                          [helper.make_tensor_value_info("y", T.FLOAT, None)], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    res = worker.run({"kind": "model", "data": m.SerializeToString(), "action": "convert"})
    assert res["outcome"] == "error:InputError", res


def test_folded_constant_with_negative_strides(worker):
    """CumSum(reverse=1) folded by onnx's reference evaluator (the fallback folder, taken
    because onnxscript's folder fails on this fp16 Gemm) returns a flipped view."""
    h = np.float16
    x = numpy_helper.from_array(np.array([[-4.35, 2.732, 0.03137]], h), "x")
    ax = numpy_helper.from_array(np.array(-2, np.int64), "ax")
    vi = helper.make_tensor_value_info
    g = helper.make_graph(
        [helper.make_node("Gemm", ["a", "a", "c"], ["g"], alpha=-2.0, transA=1, transB=1),
         helper.make_node("Add", ["a", "d"], ["s"]),
         helper.make_node("CumSum", ["x", "ax"], ["y"], exclusive=1, reverse=1)],
        "g", [vi("a", T.FLOAT16, [4, 3]), vi("c", T.FLOAT16, [2, 1]), vi("d", T.FLOAT16, [1, 3])],
        [vi("y", T.FLOAT16, [1, 3]), vi("g", T.FLOAT16, None), vi("s", T.FLOAT16, [4, 3])],
        [x, ax])
    res = _run(worker, helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    assert res["outcome"] in ("ok", "error:VerificationError", "error:ConversionError"), res
