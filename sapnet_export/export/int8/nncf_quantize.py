"""The ``openvino`` QDQ profile: NNCF's post-training quantization of the fp32 ONNX, for OpenVINO.

``nncf.quantize`` (NNCF 3.x, ONNX backend) collects its own activation statistics on the calibration
frames, places QuantizeLinear/DequantizeLinear pairs where OpenVINO's CPU plugin fuses them into int8
kernels (convolutions, and the element-wise ops between them), and corrects the bias shift that
quantizing the weights causes (fast bias correction). The preset is ``mixed``: uint8 asymmetric
activations and int8 symmetric per-channel weights (u8s8, what x86 VNNI multiplies natively). Measured
here (OpenVINO 2026.4.1, NNCF 3.4.0, AMD EPYC with AVX-512 VNNI and no AMX, the tiny 2-stage test
model): with the ``performance`` preset (int8 symmetric activations) OpenVINO's output was 11.5 dB from
fp32 where ONNX Runtime ran the same graph at 52.5 dB; with ``mixed`` both gave 57.7 dB. The graph is checked and measured like the other
profiles, with OpenVINO running it (:func:`sapnet_export.export.int8.quantize.profile_runner`);
ONNX Runtime runs it too, but slowly (it does not fuse NNCF's placement).

Source: NNCF documentation, "Post-training Quantization" (``nncf.quantize``, ``nncf.Dataset``,
``nncf.IgnoredScope``, ``fast_bias_correction``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence

import numpy as np
import onnx

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import INPUT_NAME, POOL_WEIGHTS_NAME, whole_frame_pool_weights

#: What the report says about the profile's calibration (NNCF picks its own range estimators).
NNCF_METHOD = "nncf (its own min-max statistics, fast bias correction)"


def nncf_version() -> str:
    """The installed NNCF version.

    Raises:
        InputError: NNCF is not installed; the message says how to install it.
    """
    try:
        import nncf
    except ImportError:
        raise InputError("--qdq-profile openvino quantizes with NNCF, which is not installed: "
                         "pip install 'sapnet-export[openvino]'") from None
    return nncf.__version__


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF logs INFO lines and draws rich progress bars on stdout; both would break the tables."""
    import nncf

    logger = logging.getLogger("nncf")
    level = logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def quantize_nncf(fp32_path: str | os.PathLike, output: str | os.PathLike, *, frames: np.ndarray,
                  exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """Quantize the fp32 ONNX at ``fp32_path`` with ``nncf.quantize`` into ``output`` and return it.

    Args:
        frames: calibration frames, float32 [N, 3, H, W] in [0, 1]; every one is used
            (``subset_size`` = N). A shared-pooling graph gets each frame's whole-frame pool weights.
        exclude: node names kept in float (``nncf.IgnoredScope``; names absent from the graph pass),
            except as :func:`_shared_input_quantizer` says.

    Raises:
        InputError: NNCF not installed, or no frames.
    """
    nncf_version()
    import nncf

    if frames is None or len(frames) == 0:
        raise InputError("INT8 needs calibration frames (--calib DIR)")
    model = onnx.load(str(fp32_path))
    extra = ({POOL_WEIGHTS_NAME: whole_frame_pool_weights(*frames.shape[2:])}
             if POOL_WEIGHTS_NAME in {i.name for i in model.graph.input} else {})
    exclude = _shared_input_quantizer(model, exclude)
    dataset = nncf.Dataset(list(frames), lambda frame: {INPUT_NAME: np.ascontiguousarray(frame[None]), **extra})
    with _quiet_nncf():
        quantized = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED,
                                  subset_size=len(frames), fast_bias_correction=True,
                                  ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False))
    for prop in quantized.metadata_props:  # an fp32 export's metadata came along: it is int8 now
        if prop.key == "precision":
            prop.value = "int8"
    onnx.save(quantized, str(output))
    return quantized


def _shared_input_quantizer(model: onnx.ModelProto, exclude: Sequence[str]) -> list[str]:
    """``exclude`` without the consumers of the input ``rainy`` when some of them are quantized.

    NNCF puts one quantizer on the graph input for all its consumers (each stage's first Concat in
    ``conv0``, each stage's ``+ input`` Add in ``conv``) and fails with an InternalError ("This edge
    does not have end node", NNCF 3.4) when only some of them are ignored, e.g. when ``conv0`` alone
    is quantized in a sensitivity trial. Those consumers then take the input quantizer together.
    """
    users = {node.name for node in model.graph.node if INPUT_NAME in node.input}
    excluded = set(exclude)
    if users <= excluded:
        return list(exclude)
    return [name for name in exclude if name not in users]
