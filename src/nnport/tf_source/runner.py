"""Run a TensorFlow/Keras model itself, for ``nnport verify model.keras out/model.py``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import VerificationError
from ..verify.inputs import InputSpec
from .tfmodel import _one_line, load_tf_model


def _to_last(a: np.ndarray) -> np.ndarray:
    return np.transpose(a, [0] + list(range(2, a.ndim)) + [1])


class TFRunner:
    kind = "tensorflow"

    def __init__(self, path: Path, nchw: bool = False):
        self.model = load_tf_model(path)
        self.name = str(path)
        self.nchw = nchw
        self.output_names = list(self.model.output_names)

    def _chw(self, shape, dtype) -> bool:
        return self.nchw and shape is not None and len(shape) in (4, 5) and dtype.kind == "f"

    def input_specs(self) -> list[InputSpec]:
        import onnx_ir as ir

        specs = []
        for name, shape, dtype in zip(self.model.input_names, self.model.input_shapes,
                                      self.model.input_dtypes):
            dims = tuple("batch" if (d is None and i == 0) else
                         (f"{name}_dim{i}" if d is None else d) for i, d in enumerate(shape))
            if self._chw(shape, dtype):
                dims = (dims[0], dims[-1]) + dims[1:-1]
            specs.append(InputSpec(name, dtype, dims, ir.DataType.from_numpy(dtype)))
        return specs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = self.model.input_names
        if not set(names) <= set(feeds) and len(feeds) == len(names):
            # an ONNX model converted by other means names its inputs differently: by position
            feeds = dict(zip(names, feeds.values()))
        arrays = []
        for name, shape, dtype in zip(names, self.model.input_shapes, self.model.input_dtypes):
            if name not in feeds:
                raise VerificationError(f"{self.name}: no value for input {name!r} "
                                        f"(given: {', '.join(feeds) or 'none'})")
            a = np.asarray(feeds[name]).astype(dtype, copy=False)
            arrays.append(_to_last(a) if self._chw(shape, dtype) else a)
        try:
            return self.model.call(arrays)
        except Exception as exc:
            raise VerificationError(f"TensorFlow failed to run {self.name}: "
                                    f"{_one_line(exc)}") from None
