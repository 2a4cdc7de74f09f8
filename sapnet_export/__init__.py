"""sapnet-export: SAPNet deraining from weights to ONNX and TensorRT, with proof of quality and speed."""

__version__ = "0.1.0"
