"""TensorFlow / Keras sources: ``.keras`` and ``.h5`` files and SavedModel folders.

They convert to ONNX on load (tf2onnx, then layout clean-up so the PyTorch code is NCHW
inside), and ``nnport verify`` runs them in TensorFlow itself.  TensorFlow is imported only when
such a source is used; without it the loader says which extra to install.

Inputs keep the layout the user gave them (NHWC).  ``nchw=True`` on the source
(``formats.SourcePath(path, nchw=True)``: the CLI's ``--nchw``), or else ``set_nchw(True)`` or the
environment variable ``NNPORT_TF_NCHW=1``, makes rank-4 image inputs NCHW instead; the TensorFlow
runner then transposes its inputs back so that verification still compares like with like.

The loader and the runner are found through ``formats.FORMATS`` (this package registers nothing).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..formats import FORMATS, TF_SUFFIXES as SUFFIXES, source_options
_NCHW: bool | None = None


def set_nchw(flag: bool | None) -> None:
    """The default for sources that do not say (None: from the environment): NCHW image
    inputs for TensorFlow sources converted in this process."""
    global _NCHW
    _NCHW = flag


def nchw(src=None) -> bool:
    """Whether ``src`` (else any source of this process) is to have NCHW image inputs."""
    own = source_options(src).get("nchw") if src is not None else None
    if own is not None:
        return bool(own)
    if _NCHW is not None:
        return _NCHW
    return os.environ.get("NNPORT_TF_NCHW", "").strip().lower() in ("1", "true", "yes")


def matches(path: Path) -> bool:
    return next(f for f in FORMATS if f.name == "tensorflow").matches(Path(path))


def load(src):
    """The source as ONNX (``formats.FORMATS``' loader for TensorFlow/Keras)."""
    from .loader import load_onnx

    return load_onnx(Path(src), nchw=nchw(src))


def tf_runner(src, specs=None):
    """``nnport verify``'s runner for TensorFlow/Keras sources (``formats.FORMATS``)."""
    from .runner import TFRunner

    return TFRunner(Path(src), nchw=nchw(src))


__all__ = ["matches", "set_nchw", "nchw", "SUFFIXES"]
