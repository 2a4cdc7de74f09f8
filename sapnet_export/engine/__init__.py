"""TensorRT / TensorRT-RTX: the API, the engine build, the sidecar, inspection."""
