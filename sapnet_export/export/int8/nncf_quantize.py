"""The ``openvino`` QDQ profile: NNCF's post-training quantization of the fp32 ONNX, for OpenVINO.

``nncf.quantize`` (NNCF 3.x, ONNX backend) collects its own activation statistics on the calibration
frames (their ranges taken as ``--calib-method`` says, :data:`NNCF_RANGE_ESTIMATORS`), places
QuantizeLinear/DequantizeLinear pairs where OpenVINO's CPU plugin fuses them into int8 kernels
(convolutions, and the element-wise ops between them), and corrects the bias shift that quantizing
the weights causes (fast bias correction). The preset is ``mixed``: asymmetric activations
and int8 symmetric per-channel weights. NNCF's ONNX backend writes an activation's pair in **int8**
whenever its range goes below 0 (and in uint8 otherwise); :func:`activations_to_uint8` then rewrites
those pairs as the equal uint8 ones, so that every activation is uint8 (u8s8, what x86 VNNI multiplies
natively). Why: OpenVINO 2026.4.1's CPU plugin, on a CPU without AMX (AVX-512 VNNI here), runs an int8
QuantizeLinear/DequantizeLinear -> Concat -> Conv wrongly (its low-precision transformations accept only
u8 convolution inputs there, and the rewrite they do on the way loses the scale: the Conv's input came
out as three levels where there are 256). Measured on the published checkpoint (20 real-rain frames of
320x480, Rain100L images 1, 10, 100): OpenVINO ran NNCF's graph at 23.9 / 17.6 / 18.7 dB from fp32
where ONNX Runtime ran it at 45.3 / 45.1 / 42.7 dB; after the rewrite OpenVINO gives 45.4 / 45.2 /
42.7 dB. The first wrong tensor was stage 3's LSTM gate convolutions, whose input Concat joins two
int8 pairs (docs/measurements.md, "OpenVINO and the CPU paths"). The ``performance`` preset (int8
symmetric activations) fails the same way (10 dB). The graph is checked and measured like the other
profiles, with OpenVINO running it (:func:`sapnet_export.export.int8.quantize.profile_runner`);
ONNX Runtime runs it too, but slowly (it does not fuse NNCF's placement).

Source: NNCF documentation, "Post-training Quantization" (``nncf.quantize``, ``nncf.Dataset``,
``nncf.IgnoredScope``, ``fast_bias_correction``); ONNX operator specification, QuantizeLinear and
DequantizeLinear (y = saturate(round(x / scale) + zero_point), x = (y - zero_point) * scale).
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
from sapnet_export.model.qdq_uint8 import activations_to_uint8

__all__ = ["NNCF_RANGE_ESTIMATORS", "activations_to_uint8", "nncf_method", "nncf_version", "quantize_nncf"]

#: ``--calib-method`` of the ``openvino`` profile -> NNCF's activation range estimator
#: (``nncf.quantization.range_estimator.RangeEstimatorParametersSet``): ``minmax``, the smallest of the
#: frames' minima and the largest of their maxima (every calibration frame's range is covered);
#: ``mean-minmax``, the mean of the frames' minima and of their maxima, NNCF's own default for
#: per-tensor activations (a frame with a wider range than most is clipped). Weights: per-channel
#: min-max in both. Measured on the published checkpoint, nothing kept float, all 100 Rain100L images
#: and heavy20, OpenVINO running the graph (docs/measurements.md, "The openvino profile in heavy
#: rain"): heavy20's Y-PSNR change (mean) was -0.993 dB with ``mean-minmax`` and -0.414 dB with
#: ``minmax`` on the 20 real-rain frames, -0.821 and -0.277 dB on the 24-frame mixed set.
NNCF_RANGE_ESTIMATORS = {"minmax": "MINMAX", "mean-minmax": "MEAN_MINMAX"}


def nncf_method(calib_method: str) -> str:
    """What a report says about the profile's calibration with ``calib_method``."""
    return f"nncf {calib_method} (fast bias correction)"


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
                  exclude: Sequence[str] = (), calib_method: str = "minmax") -> onnx.ModelProto:
    """Quantize the fp32 ONNX at ``fp32_path`` with ``nncf.quantize`` into ``output`` and return it.

    Args:
        frames: calibration frames, float32 [N, 3, H, W] in [0, 1]; every one is used
            (``subset_size`` = N). A shared-pooling graph gets each frame's whole-frame pool weights.
        exclude: node names kept in float (``nncf.IgnoredScope``; names absent from the graph pass),
            except as :func:`_shared_input_quantizer` says.
        calib_method: a key of :data:`NNCF_RANGE_ESTIMATORS`: how the activation ranges are taken
            from the frames' statistics.

    Raises:
        InputError: NNCF not installed, no frames, or an unknown ``calib_method``.
    """
    nncf_version()
    import nncf

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if frames is None or len(frames) == 0:
        raise InputError("INT8 needs calibration frames (--calib DIR)")
    if calib_method not in NNCF_RANGE_ESTIMATORS:
        raise InputError(f"--calib-method {calib_method}: the openvino profile (NNCF) takes "
                         f"{' or '.join(NNCF_RANGE_ESTIMATORS)}")
    estimator = getattr(RangeEstimatorParametersSet, NNCF_RANGE_ESTIMATORS[calib_method])
    model = onnx.load(str(fp32_path))
    extra = ({POOL_WEIGHTS_NAME: whole_frame_pool_weights(*frames.shape[2:])}
             if POOL_WEIGHTS_NAME in {i.name for i in model.graph.input} else {})
    exclude = _shared_input_quantizer(model, exclude)
    dataset = nncf.Dataset(list(frames), lambda frame: {INPUT_NAME: np.ascontiguousarray(frame[None]), **extra})
    advanced = AdvancedQuantizationParameters(activations_range_estimator_params=estimator)
    with _quiet_nncf():
        quantized = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED,
                                  subset_size=len(frames), fast_bias_correction=True,
                                  ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False),
                                  advanced_parameters=advanced)
    activations_to_uint8(quantized)
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
