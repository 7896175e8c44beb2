"""Run an ONNX model in onnxruntime."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx_ir as ir

from ..errors import VerificationError
from ..io import ModelSource, describe, load_proto, source_loader

# Memory: onnxruntime memory-maps external data (at any offset) and, with prepacking off, runs
# its kernels on the mapped bytes, so a model's weights cost their size once, as file pages.
# A single-file model is handed over as a small skeleton whose big tensors are external data
# pointing into the .onnx file itself (see nnport.skeleton), with the model's folder as the
# base for those references: no copy of the weights is parsed, serialized or written anywhere.
# Prepacking (MLAS repacks constant GEMM operands once per session) would keep a second copy
# and only pays off over many runs; verification runs once.
_FOLDER_KEY = "session.model_external_initializers_file_folder_path"

# A QDQ model is verified against the graph as ONNX defines it: DequantizeLinear, the float op,
# QuantizeLinear.  onnxruntime's extended optimizations fuse those into its own int8 kernels.
# On an x86 CPU without VNNI (AVX2 only; onnxruntime's quantization guide warns that its u8s8
# kernels there can saturate) they put a two-layer int8 MLP's outputs 12 to 29 quantization
# steps away from the definition, which onnxruntime's basic level (constant folding, no
# fusions) and ncnn's int8 layers both reproduce exactly (tests/ncnn_emit/test_int8.py).
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def _is_qdq(model) -> bool:
    """Whether a ModelProto / ir.Model's main graph has Q/DQ nodes."""
    if isinstance(model, ir.Model):
        return any(n.op_type in _QDQ_OPS for n in model.graph)
    graph = getattr(model, "graph", None)
    return graph is not None and any(n.op_type in _QDQ_OPS for n in graph.node)


def _external_folder(src) -> str | None:
    """The one folder every external tensor of an ``ir.Model``'s main graph resolves against
    (a model read lean, or with external data), when its other graphs hold none; else None."""
    if not isinstance(src, ir.Model):
        return None
    from ..irutil import ir_tensors as _ir_tensors

    folders = set()
    main = {id(v.const_value) for v in src.graph.initializers.values()}
    for t in _ir_tensors(src):
        if isinstance(t, ir.ExternalTensor):
            if id(t) not in main or os.path.isabs(os.fspath(t.location)):
                return None
            folders.add(os.path.abspath(t.base_dir))
    return folders.pop() if len(folders) == 1 else None


class OrtRunner:
    kind = "onnxruntime"

    def __init__(self, src: ModelSource, threads: int | None = None, folder: str | None = None):
        """``folder``: where the external data of a ModelProto ``src`` lies (a model read lean,
        ``io.load_skeleton``: its weights stay in its file there)."""
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # errors reach the user as our one line, not ORT's log
        self.name = describe(src)

        def options(folder: str | None = None, qdq: bool = False):
            opts = ort.SessionOptions()
            opts.log_severity_level = 4
            if qdq:  # see _QDQ_OPS
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            opts.add_session_config_entry("session.disable_prepacking", "1")
            if folder is not None:
                opts.add_session_config_entry(_FOLDER_KEY, folder)
            if threads:
                opts.intra_op_num_threads = threads
            return opts

        providers = ["CPUExecutionProvider"]
        try:
            if isinstance(src, (str, os.PathLike)):
                self.sess = self._lean_session(ort, src, options, providers)
                if self.sess is None:
                    qdq = source_loader(src) is None and _is_qdq(load_proto(src))
                    self.sess = ort.InferenceSession(str(src), options(qdq=qdq),
                                                     providers=providers)
            else:
                folder = _external_folder(src) if folder is None else folder
                if folder is not None and isinstance(src, ir.Model):
                    # its weights point into files there: hand them over as references, mapped
                    data = ir.to_proto(src).SerializeToString()
                    qdq = _is_qdq(src)
                else:
                    proto = load_proto(src)
                    data, qdq = proto.SerializeToString(), _is_qdq(proto)
                    del proto
                self.sess = ort.InferenceSession(data, options(folder, qdq), providers=providers)
                del data
        except VerificationError:
            raise
        except Exception as exc:
            raise VerificationError(f"onnxruntime cannot load {self.name}: "
                                    f"{' '.join(str(exc).split())[:400]}") from None
        self.output_names = [o.name for o in self.sess.get_outputs()]

    @staticmethod
    def _lean_session(ort, src, options, providers):
        """A session over the skeleton of a single-file model (weights mapped from the file),
        or None when that does not apply (small, external-data or non-ONNX sources)."""
        from ..io import load_skeleton

        if source_loader(src) is not None:
            return None
        proto = load_skeleton(src)
        if proto is None:
            return None
        folder = str(Path(src).resolve().parent)
        data, qdq = proto.SerializeToString(), _is_qdq(proto)
        del proto
        try:
            return ort.InferenceSession(data, options(folder, qdq), providers=providers)
        except Exception:
            return None  # e.g. a runtime that ignores the folder option: the ordinary path

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
