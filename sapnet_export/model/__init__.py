"""The network, its checkpoints, the ONNX graph contract and tiling."""
