"""nnport: move neural-network models between frameworks through ONNX, and prove it numerically."""
__version__ = "0.1.0"

from .errors import (ConversionError, InputError, NnportError,  # noqa: E402
                     UnsupportedOpsError, VerificationError)


def convert(src, dst, **options):
    """Convert ``src`` (an .onnx path or onnx.ModelProto) to ``dst`` (``.py``: PyTorch source
    plus ``.safetensors``).  Verifies against onnxruntime unless ``verify=False``."""
    from .convert import convert as _convert

    return _convert(src, dst, **options)


def to_torch(src, **options):
    """An in-memory ``torch.nn.Module`` for an ONNX model (the same generated code, exec'd)."""
    from .convert import to_torch as _to_torch

    return _to_torch(src, **options)


def verify(a, b, **options):
    """Run ``a`` and ``b`` on the same inputs; returns a VerifyReport (``.ok``, ``.to_dict()``)."""
    from .verify import verify as _verify

    return _verify(a, b, **options)


def inspect(src, **options):
    """A dict describing a model, with the pre-flight list of nodes that cannot convert."""
    from .inspection import inspect_model

    return inspect_model(src, **options)


__all__ = ["convert", "to_torch", "verify", "inspect", "NnportError", "InputError",
           "ConversionError", "UnsupportedOpsError", "VerificationError", "__version__"]
