"""Graph rewrites that make an ONNX graph expressible in ncnn.

- ``probe``: concrete shapes of every value and the values of all shape arithmetic (ONNX shape
  inference and the reference evaluation of each shape op, no runtime; twice when the model has
  dynamic dims, to learn which numbers follow the input size: those become -1/0 in Reshape
  params so the .param stays shape-agnostic);
- ``adaptive_pool``: adaptive average pools written out as rank-6 GatherND regions (torch's
  dynamo export of non-dividing sizes) -> one ``nnport::AdaptivePool`` node, a pass
  (``passes/base.py``) run once the probe has measured the model; a region is claimed only
  when its numbers on random inputs are the pool's;
- ``unfold``: F.unfold written out as Pad and two gathers building a rank-6 value ->
  one ``nnport::Unfold`` node (ncnn's im2col layer), claimed only when the region's numbers
  on a random input are that im2col's;
- ``patterns``: ONNX subgraphs that are one ncnn layer (Erf-GELU, decomposed LayerNorm, HardSwish);
- ``fuse``: rewrites on the ncnn graph (Conv/InnerProduct + BatchNorm, + activation, summed
  convolution branches of one input as one convolution, neutral scalar ops dropped);
- ``split``: a blob read by several layers goes through a Split layer, as ncnn requires.
"""
