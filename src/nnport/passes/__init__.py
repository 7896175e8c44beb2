"""Graph passes on onnx_ir models, one contract for all (``base.py``: ``pass_(model) ->
PassResult``, in place).  ``normalize.pipeline.normalize`` runs the pipeline every target
starts from."""
from .base import Pass, PassResult, run_passes
from .normalize.pipeline import normalize

__all__ = ["Pass", "PassResult", "normalize", "run_passes"]
