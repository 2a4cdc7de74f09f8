"""ONNX export and precision conversion (fp16 here, int8 in int8/)."""
