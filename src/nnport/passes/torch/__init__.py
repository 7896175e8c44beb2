"""Fusions for the PyTorch target only (``torch_emit.fuse``): patterns -> one ``nnport::`` node each.
Every fusion is a pass (``passes/base.py``: ``fn(model) -> PassResult``), matching with
``match.py``."""
from __future__ import annotations

from .fuse_activation import fuse_activations
from .fuse_attention import fuse_attention
from .fuse_gelu import fuse_gelu
from .fuse_index_chain import fuse_index_chains
from .fuse_linear import fuse_linear
from .fuse_norm import fuse_norms
from .fuse_unbind import fuse_unbind

# The pipeline, in the order torch_emit.fuse runs it (the order it had before it was a list;
# fuse_index_chains came later and touches only shape arithmetic).
FUSIONS = (fuse_index_chains, fuse_unbind, fuse_attention, fuse_gelu, fuse_activations, fuse_norms, fuse_linear)
