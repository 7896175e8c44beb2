"""Fusions for the PyTorch target only (``torch_emit.fuse``): patterns -> one ``nnport::`` node each."""
