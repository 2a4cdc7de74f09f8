"""INT8: calibration sets, QDQ quantization profiles, TensorRT QDQ rules, sensitivity and the fidelity budget."""
