"""Serving on NVIDIA Triton Inference Server: ``sapnet-export serve`` (PyTriton), model repositories
for the Triton container (``triton-repo``) and their shared contract (docs/serving.md)."""
