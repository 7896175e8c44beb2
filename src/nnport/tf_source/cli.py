"""CLI plugin: ``--nchw`` for TensorFlow/Keras sources."""
from __future__ import annotations


def add_convert_options(parser) -> None:
    parser.add_argument("--nchw", action="store_true",
                        help="TensorFlow/Keras sources: make image inputs NCHW (default: NHWC, "
                             "as the model was built)")


def convert_options(args) -> dict:
    if getattr(args, "nchw", False):
        from pathlib import Path

        from ..errors import InputError
        from . import matches, set_nchw

        if not matches(Path(args.src)):
            raise InputError(f"--nchw applies to TensorFlow/Keras sources (.keras, .h5, a "
                             f"SavedModel folder), not {args.src}")
        set_nchw(True)
    return {}
