"""The served model's contract, shared by ``serve``, ``triton-repo`` and the ``triton`` Runner.

Input ``rainy`` FP32 [-1, 3, -1, -1] (batch, RGB, height, width; values in [0, 1]), output
``derained`` FP32 of the same shape, the toolkit's ONNX contract (:mod:`sapnet_export.model.onnx_meta`).
The toolkit's metadata travels in the model configuration's ``parameters`` under :data:`PARAM_PREFIX`
(Triton model configuration, ``parameters``: string key/value pairs the server passes through).
"""

from __future__ import annotations

from sapnet_export.model.onnx_meta import INPUT_NAME, OUTPUT_NAME

#: Triton datatype of both tensors (Triton's KServe-v2 protocol name).
DATATYPE = "FP32"
#: Dims of both tensors without the batch dimension (``max_batch_size`` > 0 adds it).
DIMS = (3, -1, -1)
#: Key prefix of the toolkit's metadata in a model configuration's ``parameters``.
PARAM_PREFIX = "sapnet."
#: Default model name.
DEFAULT_NAME = "sapnet"

__all__ = ["DATATYPE", "DEFAULT_NAME", "DIMS", "INPUT_NAME", "OUTPUT_NAME", "PARAM_PREFIX"]


def metadata_parameters(info) -> dict[str, str]:  # noqa: ANN001 - RunnerInfo
    """``{"sapnet.backend": ..., "sapnet.precision": ..., "sapnet.stages": ..., "sapnet.model": ...}``
    from a :class:`~sapnet_export.runners.base.RunnerInfo` (string values, as Triton stores them)."""
    from sapnet_export import __version__

    return {f"{PARAM_PREFIX}backend": info.backend, f"{PARAM_PREFIX}precision": info.precision,
            f"{PARAM_PREFIX}stages": str(info.stages), f"{PARAM_PREFIX}model": str(info.model),
            f"{PARAM_PREFIX}toolkit": f"sapnet-export {__version__}"}
