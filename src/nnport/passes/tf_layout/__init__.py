"""TensorFlow/Keras layout clean-up after tf2onnx: NHWC graphs made NCHW inside
(``tf_source/loader.py``).  ``keras_rnn`` runs once first; the passes of ``ROUND`` are
``fn(model) -> bool`` (changed) and run in rounds until none changes the graph."""
from __future__ import annotations

from .conv1d import conv2d_to_conv1d
from .conv_fold import fold_conv_affine
from .keras_rnn import rewrite_keras_rnn
from .pad_conv import fuse_pad_into_conv
from .transpose import optimize_transposes

ROUND = (fuse_pad_into_conv, fold_conv_affine, optimize_transposes, conv2d_to_conv1d)

__all__ = ["ROUND", "rewrite_keras_rnn"]
