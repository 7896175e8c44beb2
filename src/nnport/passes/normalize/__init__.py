"""Normalization: the passes every target starts from (``pipeline.normalize``), and the simplifier's
shared folds."""
