"""Graph passes on onnx_ir models.  ``pipeline.normalize`` composes them."""
from .normalize.pipeline import normalize

__all__ = ["normalize"]
