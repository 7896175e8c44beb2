"""Model surgery tools: simplify, extract a subgraph, edit names/shapes/opset/outputs."""
from .edit import edit
from .extract import extract
from .simplify import SimplifyResult, simplify

__all__ = ["simplify", "SimplifyResult", "extract", "edit"]
