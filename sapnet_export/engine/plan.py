"""What a build is for: a SAPNet graph fit for TensorRT, its optimization profile and the GPUs it is
compiled for (step 1 of :func:`sapnet_export.engine.build.build_engine`)."""

from __future__ import annotations

from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.model.onnx_meta import POOL_WEIGHTS_NAME, check_io, graph_precision, load_onnx, metadata
from sapnet_export.export.int8.qdq_rules import tensorrt_qdq_violations
from .sidecar import Profile
from .trt_api import Gpu, TrtApi, rtx_capability

#: Profile used when ``--shapes`` is not given for a dynamic ONNX: 64x64 up to 1080p, VGA optimum.
DEFAULT_PROFILE = Profile(min=(1, 3, 64, 64), opt=(1, 3, 480, 640), max=(1, 3, 1080, 1920))


def check_graph(onnx_path: Path) -> tuple[dict[str, str], str, tuple[int, ...] | None]:
    """Metadata, precision and static input shape (None if dynamic) of a SAPNet ONNX fit for TensorRT."""
    proto = load_onnx(onnx_path)
    if check_io(proto, onnx_path):
        raise InputError(f"{onnx_path}: a shared-pooling export (input {POOL_WEIGHTS_NAME!r}, for ONNX "
                         "Runtime); engines are built from plain exports: export again without "
                         "--shared-pooling (an engine's tiles then pool on their own, docs/commands.md 'Tiling')")
    precision = graph_precision(proto)
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in proto.graph.node):
        violations = tensorrt_qdq_violations(proto)
        if violations:
            raise InputError(f"{onnx_path}: this int8 graph breaks TensorRT's QDQ rules ({violations[0]}"
                             f"{f' and {len(violations) - 1} more' if len(violations) > 1 else ''}); "
                             "quantize it with --qdq-profile tensorrt")
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    static = tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None
    return metadata(proto), precision, static


def resolve_profile(requested: Profile | None, static: tuple[int, ...] | None, onnx_path: Path,
                     meta: dict[str, str]) -> Profile:
    """``--shapes``; else a static graph's shape; else :data:`DEFAULT_PROFILE`, with OPT at the
    calibration frames' size for an int8 graph (its scales were measured there)."""
    if static is None:
        if requested is not None:
            return requested
        if "calibration_shape" in meta:
            height, width = (int(v) for v in meta["calibration_shape"].split("x")[2:])
            opt = (1, 3, *(min(max(v, lo), hi) for v, lo, hi in
                           zip((height, width), DEFAULT_PROFILE.min[2:], DEFAULT_PROFILE.max[2:])))
            return Profile(DEFAULT_PROFILE.min, opt, DEFAULT_PROFILE.max)
        return DEFAULT_PROFILE
    fixed = Profile(static, static, static)  # type: ignore[arg-type]
    if requested is not None and requested != fixed:
        raise InputError(f"{onnx_path}: the graph's input is static {'x'.join(map(str, static))}; "
                         f"--shapes {requested} cannot apply (export without --static for a range)")
    return fixed


def resolve_targets(api: TrtApi, targets: tuple[str, ...], gpu: Gpu | None) -> list[str]:
    """Compute capabilities the engine is compiled for, as recorded (``smXY``)."""
    if api.kind == "tensorrt":
        if targets and list(targets) != [gpu.capability]:
            raise InputError(f"--target {', '.join(targets)}: full TensorRT builds for the GPU it runs "
                             f"on ({gpu.name}, {gpu.capability}); use --builder tensorrt-rtx to "
                             "compile for another GPU")
        return [gpu.capability]
    if not targets:
        if gpu is None:
            raise InputError("no GPU here, so name the GPU the engine is for: --target "
                             "sm75|sm80|sm86|sm89|sm120|sm121 (TensorRT-RTX compiles ahead of time)")
        return [gpu.capability]
    resolved = []
    for target in targets:
        rtx_capability(api, target)  # validates the name
        if target.lower() == "current":
            if gpu is None:
                raise InputError("--target current needs a GPU; none here")
            resolved.append(gpu.capability)
        else:
            resolved.append(target.lower())
    return resolved


def calibration_warning(meta: dict[str, str], profile: Profile) -> str | None:
    """A warning when an int8 graph's calibration frames are not the profile's OPT size (else None)."""
    shape = meta.get("calibration_shape")
    if not shape:
        return None
    calib_hw = tuple(int(v) for v in shape.split("x")[2:])
    if calib_hw != profile.opt[2:]:
        return (f"calibration frames are {calib_hw[0]}x{calib_hw[1]} but the profile's OPT shape is "
                f"{profile.opt[2]}x{profile.opt[3]}: the int8 scales were measured at another size "
                "than the one the engine is tuned for; calibrate at the camera's resolution or pass "
                f"--shapes with OPT 1x3x{calib_hw[0]}x{calib_hw[1]}")
    return None

