"""TensorFlow / Keras sources: ``.keras`` and ``.h5`` files and SavedModel folders.

They convert to ONNX on load (tf2onnx, then layout clean-up so the PyTorch code is NCHW
inside), and ``nnport verify`` runs them in TensorFlow itself.  TensorFlow is imported only when
such a source is used; without it the loader says which extra to install.

Inputs keep the layout the user gave them (NHWC).  ``set_nchw(True)`` (the CLI's ``--nchw``, or
the environment variable ``NNPORT_TF_NCHW=1``) makes rank-4 image inputs NCHW instead; the
TensorFlow runner then transposes its inputs back so that verification still compares like with
like.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..io import register_source
from ..verify import register_runner

SUFFIXES = (".keras", ".h5", ".hdf5")
_NCHW: bool | None = None


def set_nchw(flag: bool | None) -> None:
    """NCHW image inputs for TensorFlow sources converted in this process (None: from env)."""
    global _NCHW
    _NCHW = flag


def nchw() -> bool:
    if _NCHW is not None:
        return _NCHW
    return os.environ.get("NNPORT_TF_NCHW", "").strip().lower() in ("1", "true", "yes")


def matches(path: Path) -> bool:
    if path.suffix.lower() in SUFFIXES:
        return True
    return path.is_dir() and (path / "saved_model.pb").is_file()


def _loader(path: Path):
    from .loader import load_onnx

    return load_onnx(path, nchw=nchw())


register_source(matches, _loader)


@register_runner(*SUFFIXES, "/")
def _tf_runner(path, specs=None):
    from .runner import TFRunner

    return TFRunner(Path(path), nchw=nchw())


__all__ = ["matches", "set_nchw", "nchw", "SUFFIXES"]
