"""Run an ONNX model in onnxruntime."""
from __future__ import annotations

import os

import numpy as np

from ..errors import VerificationError
from ..io import ModelSource, describe, load_proto


class OrtRunner:
    kind = "onnxruntime"

    def __init__(self, src: ModelSource, threads: int | None = None):
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # errors reach the user as our one line, not ORT's log
        self.name = describe(src)
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        if threads:
            opts.intra_op_num_threads = threads
        try:
            if isinstance(src, (str, os.PathLike)):
                self.sess = ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
            else:
                proto = load_proto(src)
                self.sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise VerificationError(f"onnxruntime cannot load {self.name}: "
                                    f"{' '.join(str(exc).split())[:400]}") from None
        self.output_names = [o.name for o in self.sess.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list:
        names = [i.name for i in self.sess.get_inputs()]
        try:
            import onnxruntime as ort

            ro = ort.RunOptions()
            ro.log_severity_level = 4
            return self.sess.run(None, {k: v for k, v in feeds.items() if k in names}, ro)
        except Exception as exc:
            raise VerificationError(f"onnxruntime failed to run {self.name}: "
                                    f"{' '.join(str(exc).split())[:400]}") from None
