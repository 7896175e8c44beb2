"""TensorFlow/Keras layout clean-up after tf2onnx: NHWC graphs made NCHW inside
(``tf_source/loader.py``).  Every one is a pass (``passes/base.py``: ``fn(model) ->
PassResult``): ``FIRST`` runs once, then ``ROUND`` in rounds until none changes the graph (at
most ``ROUNDS``)."""
from __future__ import annotations

from .conv1d import conv2d_to_conv1d
from .conv_fold import fold_conv_affine
from .keras_rnn import rewrite_keras_rnn
from .pad_conv import fuse_pad_into_conv
from .transpose import optimize_transposes

FIRST = (rewrite_keras_rnn,)
ROUND = (fuse_pad_into_conv, fold_conv_affine, optimize_transposes, conv2d_to_conv1d)
ROUNDS = 4

__all__ = ["FIRST", "ROUND", "ROUNDS", "rewrite_keras_rnn"]
