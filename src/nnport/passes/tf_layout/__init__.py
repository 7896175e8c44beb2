"""TensorFlow/Keras layout clean-up after tf2onnx: NHWC graphs made NCHW inside (``tf_source/loader.py``)."""
