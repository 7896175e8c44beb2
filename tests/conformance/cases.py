"""The ONNX backend node cases, loaded once, plus a runner shared by the test and the benchmark."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
from onnx import numpy_helper


@functools.lru_cache(maxsize=1)
def all_cases() -> dict:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases("")}


def _to_numpy(x):
    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, onnx.SequenceProto):
        return [_to_numpy(t) for t in numpy_helper.to_list(x)]
    if isinstance(x, list):
        return [_to_numpy(t) for t in x]
    if x is None:
        return None
    return np.asarray(x)


def run_case(case) -> None:
    """Convert the case's model with nnport.to_torch and check every data set; raises on failure."""
    import torch

    import nnport
    from nnport.verify.torch_runner import to_numpy, to_torch_input

    module = nnport.to_torch(case.model)
    for inputs, expected in case.data_sets:
        args = [to_torch_input(_to_numpy(x)) for x in inputs]
        with torch.no_grad():
            out = module(*args)
        if not isinstance(out, tuple):
            out = (out,)
        got = [to_numpy(o) for o in out]
        assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            _check(g, _to_numpy(e), case.rtol, case.atol, f"output {i}")


_CONTAINERS = {"int4": "int8", "uint4": "uint8", "int2": "int8", "uint2": "uint8"}


def _check(got, exp, rtol, atol, what):
    if exp is None:
        assert got is None, f"{what}: expected None"
        return
    if isinstance(exp, list):
        assert isinstance(got, list), f"{what}: expected a sequence, got {type(got).__name__}"
        assert len(got) == len(exp), f"{what}: sequence length {len(got)} != {len(exp)}"
        for j, (g, e) in enumerate(zip(got, exp)):
            _check(g, e, rtol, atol, f"{what}[{j}]")
        return
    got = np.asarray(got)
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != expected {exp.shape}"
    if exp.dtype.kind in "OUS":
        assert np.array_equal(got.astype(exp.dtype), exp), f"{what}: strings differ"
        return
    if exp.dtype.name in _CONTAINERS and got.dtype.name == _CONTAINERS[exp.dtype.name]:
        # torch has no sub-byte types: nnport documents int8/uint8 containers for them
        exp = exp.astype(got.dtype)
    assert got.dtype == exp.dtype or (got.dtype.name == exp.dtype.name), (
        f"{what}: dtype {got.dtype} != expected {exp.dtype}")
    if exp.dtype.kind in "biu":
        np.testing.assert_array_equal(got, exp, err_msg=what)
    else:
        np.testing.assert_allclose(got.astype(np.float64) if got.dtype.kind != "c" else got,
                                   exp.astype(np.float64) if exp.dtype.kind != "c" else exp,
                                   rtol=rtol, atol=atol, err_msg=what)
