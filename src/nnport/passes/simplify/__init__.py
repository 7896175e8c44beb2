"""Passes only ``nnport simplify`` runs (each verified in onnxruntime by ``tools/simplify.py``)."""
