"""ONNX op -> ncnn layer emitters ``fn(ctx, node)``, one file per op family, registered in
``REGISTRY`` with the spec versions each was reviewed against.

Importing this package fills the registry (``ncnn_emit/registry.py``): the list below is the one
place that names the op modules; a new ``op_<family>.py`` is added to it.  Op modules import
``register`` from ``..registry`` and shared helpers from ``.common``, never this package."""
from __future__ import annotations

from ..registry import REGISTRY, register
from . import (op_activation, op_binary, op_compare, op_conv, op_gemm, op_norm, op_pool,  # noqa: F401
               op_quant, op_reduce, op_resize, op_rnn, op_shape, op_signal, op_softmax)

__all__ = ["REGISTRY", "register"]
