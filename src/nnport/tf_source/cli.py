"""CLI plugin: ``--nchw`` for TensorFlow/Keras sources."""
from __future__ import annotations


def add_convert_options(parser) -> None:
    parser.add_argument("--nchw", action="store_true",
                        help="TensorFlow/Keras sources: make image inputs NCHW (default: NHWC, "
                             "as the model was built)")


def convert_source(args, src):
    """``--nchw``: the source, carrying the option to its loader and runner."""
    if getattr(args, "nchw", False):
        from pathlib import Path

        from ..errors import InputError
        from ..formats import SourcePath
        from . import matches

        if not matches(Path(src)):
            raise InputError(f"--nchw applies to TensorFlow/Keras sources (.keras, .h5, a "
                             f"SavedModel folder), not {src}")
        return SourcePath(src, nchw=True)
    return src
