"""nnport: move neural-network models between frameworks through ONNX, and prove it numerically."""
from ._version import __version__

from .errors import (ConversionError, InputError, NnportError,
                     UnsupportedOpsError, VerificationError)

# The submodules are imported first so that the functions below (same names as the
# ``convert`` module and ``verify`` package) are what ``nnport.convert``/``nnport.verify`` mean.
from . import convert as _convert_mod
from . import inspection as _inspection
from . import verify as _verify_pkg


def convert(src, dst, **options):
    """Convert ``src`` (an .onnx path or onnx.ModelProto) to ``dst`` (``.py``: PyTorch source
    plus ``.safetensors``).  Verifies against onnxruntime unless ``verify=False``; returns a
    ConvertResult (``.outputs``, ``.report``, ``.ok``)."""
    return _convert_mod.convert(src, dst, **options)


def to_torch(src, **options):
    """An in-memory ``torch.nn.Module`` for an ONNX model (the same generated code, exec'd)."""
    return _convert_mod.to_torch(src, **options)


def compile(module, **options):
    """``module`` compiled for CPU inference (inductor with weight freezing, inference_mode,
    fp32 linears in oneDNN); call the result as the module. See ``nnport.torch_compile``."""
    from .torch_compile import compile as _compile

    return _compile(module, **options)


def verify(a, b, **options):
    """Run ``a`` and ``b`` on the same inputs; returns a VerifyReport (``.ok``, ``.to_dict()``)."""
    return _verify_pkg.verify(a, b, **options)


def inspect(src, **options):
    """A dict describing a model, with the pre-flight list of nodes that cannot convert."""
    return _inspection.inspect_model(src, **options)


def export(src, dst, **options):
    """Export a PyTorch model (nn.Module, "file.py:factory", "pkg.mod:attr", TorchScript .pt,
    ExportedProgram .pt2) to ONNX, simplified and verified against onnxruntime."""
    from .torch_export import export as _export

    return _export(src, dst, **options)


def simplify(src, dst=None, **options):
    """Simplify an ONNX model pass by pass, each pass verified in onnxruntime (see nnport.tools)."""
    from .tools import simplify as _simplify

    return _simplify(src, dst, **options)


def extract(src, dst=None, *, inputs, outputs, **options):
    """The runnable subgraph between tensors ``inputs`` and ``outputs``."""
    from .tools import extract as _extract

    return _extract(src, dst, inputs=inputs, outputs=outputs, **options)


__all__ = ["convert", "to_torch", "compile", "export", "verify", "inspect", "simplify", "extract", "NnportError", "InputError",
           "ConversionError", "UnsupportedOpsError", "VerificationError", "__version__"]
