"""Slice with step -1 over whole axes (torch.flip) -> Flip 0=axes; ScatterND of a run of rows
(slice_scatter) -> Crop + Concat."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

pytest.importorskip("ncnn")

from .models import onnx_matches  # noqa: E402


@pytest.mark.parametrize("shape,axes", [((2, 3, 5), [0, 2]), ((1, 4, 6, 5), [1, -1]),
                                        ((7,), [0])])
def test_flip(tmp_path, shape, axes):
    big = np.iinfo(np.int64)
    k = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (
        ("s", [-1] * len(axes)), ("e", [big.min] * len(axes)), ("a", axes),
        ("t", [-1] * len(axes)))]
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    onnx_matches(tmp_path, [helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
                 {"x": x}, inits=k, layers=["Flip"])


@pytest.mark.parametrize("data,rows,upd", [((8, 4), [2, 3, 4], (3, 4)),
                                             ((3, 2, 5, 8), [1], (1, 2, 5, 8)),
                                             ((1, 3, 4), [0], (1, 3, 4))])
def test_scatter_nd_rows_is_concat(tmp_path, data, rows, upd):
    """slice_scatter as exported: ScatterND of consecutive rows of axis 0."""
    idx = numpy_helper.from_array(np.array(rows, np.int64).reshape(-1, 1), "i")
    rs = np.random.RandomState(0)
    feeds = {"x": rs.rand(*data).astype(np.float32), "u": rs.rand(*upd).astype(np.float32)}
    onnx_matches(tmp_path, [helper.make_node("Relu", ["x"], ["r"]),
                            helper.make_node("ScatterND", ["r", "i", "u"], ["y"])],
                 feeds, inits=[idx])
