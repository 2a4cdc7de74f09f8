"""Typed ONNX -> TensorRT / TensorRT-RTX engine, with its provenance sidecar (DESIGN.md sections 3 and 5).

The precision is the ONNX graph's (fp32, fp16, or int8 QDQ with the ``tensorrt`` profile); the builder
compiles it as a strongly typed network, so one code path serves TensorRT 10, TensorRT 11 and
TensorRT-RTX (:mod:`sapnet_export.engine.trt_api`). Measured with TensorRT-RTX 1.7.1.116 on the 2-core CI
machine (no GPU), published checkpoint, 6 stages: see the README's engine table.
"""

from __future__ import annotations

import collections
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sapnet_export import __version__
from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.fileio import atomic_output, atomic_outputs, check_output, sha256_file, to_json
from sapnet_export.model.onnx_meta import INPUT_NAME, POOL_WEIGHTS_NAME, check_io, graph_precision, load_onnx, metadata
from sapnet_export.export.int8.qdq_rules import tensorrt_qdq_violations
from .sidecar import SIDECAR_FORMAT, Profile, sidecar_path
from .trt_api import Gpu, TrtApi, choose_builder, collecting_logger, current_gpu, rtx_capability

#: Profile used when ``--shapes`` is not given for a dynamic ONNX: 64x64 up to 1080p, VGA optimum.
DEFAULT_PROFILE = Profile(min=(1, 3, 64, 64), opt=(1, 3, 480, 640), max=(1, 3, 1080, 1920))
#: Builder optimization level TensorRT uses when none is set (0 fastest build .. 5 most tactics).
DEFAULT_OPT_LEVEL = 3
#: Layer types that compute nothing (weights, shapes, the Q/DQ markers); left out of the layer list.
_BOOKKEEPING = {"CONSTANT", "SHAPE", "QUANTIZE", "DEQUANTIZE"}
#: TensorRT ``DataType`` member -> the numpy-style name the sidecar uses.
_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
           "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FP8": "float8", "INT4": "int4"}


class BuildFailed(CheckFailed):
    """The builder rejected the network or failed to build it (exit code 1); the message has its log."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build.

    Attributes:
        builder: ``auto`` (full TensorRT with a GPU, else TensorRT-RTX), ``tensorrt`` or ``tensorrt-rtx``.
        profile: the optimization profile; None: the ONNX's static shape, or :data:`DEFAULT_PROFILE`
            (int8: with OPT at the calibration frames' size).
        targets: TensorRT-RTX compute capabilities (``sm75`` ...); empty: the GPU present (an error
            without one). Full TensorRT builds for the GPU present; a different target is an error.
        timing_cache: file read before and updated after the build (full TensorRT; TensorRT-RTX has
            none and says so in the warnings).
        workspace_mib: workspace memory pool limit in MiB (None: the builder's default, all GPU memory).
        opt_level: builder optimization level, 0..5.
    """

    builder: str = "auto"
    profile: Profile | None = None
    targets: tuple[str, ...] = ()
    timing_cache: Path | None = None
    workspace_mib: int | None = None
    opt_level: int = DEFAULT_OPT_LEVEL


@dataclass
class EngineResult:
    """What :func:`build_engine` wrote: ``path`` (engine), ``sidecar_path``, ``sidecar`` (its content),
    ``size_bytes``, ``build_s`` (seconds in ``build_serialized_network``), ``warnings`` (for the user)."""

    path: Path
    sidecar_path: Path
    sidecar: dict
    size_bytes: int
    build_s: float
    warnings: list[str] = field(default_factory=list)


def dtype_name(dtype: object) -> str:
    """A TensorRT ``DataType`` as ``float32``, ``float16``, ``int8``, ..."""
    member = str(dtype).rsplit(".", 1)[-1]
    return _DTYPES.get(member, member.lower())


def _layer_type(layer: object) -> str:
    return str(layer.type).rsplit(".", 1)[-1]


def network_layers(network: object) -> list[dict]:
    """The compute layers of a parsed network with the precision they are typed to run in.

    A strongly typed network fixes each layer's precision from its tensors' types: a Convolution whose
    input comes from a DequantizeLayer runs in int8 (TensorRT fuses the Q/DQ pair into it); any other
    layer in its output's type. Constant, Shape and Q/DQ layers are left out.

    Returns:
        ``[{"name": str, "type": "CONVOLUTION"|..., "precision": "int8"|"float16"|"float32"|...}]``.
    """
    producers = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producers[layer.get_output(j).name] = _layer_type(layer)
    rows = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        kind = _layer_type(layer)
        if kind in _BOOKKEEPING:
            continue
        precision = dtype_name(layer.get_output(0).dtype) if layer.num_outputs else "-"
        if kind == "CONVOLUTION" and producers.get(layer.get_input(0).name) == "DEQUANTIZE":
            precision = "int8"
        rows.append({"name": layer.name, "type": kind, "precision": precision})
    return rows


def precision_histogram(layers: list[dict]) -> dict[str, int]:
    """``{"CONVOLUTION int8": 276, ...}`` from :func:`network_layers` rows, most common first."""
    counts = collections.Counter(f"{row['type']} {row['precision']}" for row in layers)
    return dict(counts.most_common())


def _tensor_io(tensor: object, mode: str) -> dict:
    return {"name": tensor.name, "mode": mode, "dtype": dtype_name(tensor.dtype),
            "shape": [int(d) for d in tensor.shape]}


def _check_graph(onnx_path: Path) -> tuple[dict[str, str], str, tuple[int, ...] | None]:
    """Metadata, precision and static input shape (None if dynamic) of a SAPNet ONNX fit for TensorRT."""
    proto = load_onnx(onnx_path)
    if check_io(proto, onnx_path):
        raise InputError(f"{onnx_path}: a shared-pooling export (input {POOL_WEIGHTS_NAME!r}, for ONNX "
                         "Runtime); engines are built from plain exports: export again without "
                         "--shared-pooling (an engine's tiles then pool on their own, README 'Tiling')")
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


def _resolve_profile(requested: Profile | None, static: tuple[int, ...] | None, onnx_path: Path,
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


def _resolve_targets(api: TrtApi, targets: tuple[str, ...], gpu: Gpu | None) -> list[str]:
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


def _calibration_warning(meta: dict[str, str], profile: Profile) -> str | None:
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


def _calibration_provenance(meta: dict[str, str]) -> dict | None:
    if "calibration" not in meta:
        return None
    manifest = Path(meta["calibration"]) / "manifest.json"
    return {"path": meta["calibration"], "frames_sha256": meta.get("calibration_frames_sha256"),
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
            "shape": meta.get("calibration_shape"), "method": meta.get("calib_method")}


def _configure(api: TrtApi, builder: object, options: BuildOptions, profile: Profile,
               targets: list[str], gpu: Gpu | None, warnings: list[str]) -> tuple[object, object | None]:
    """The builder config (and the timing cache object for full TensorRT)."""
    trt = api.trt
    config = builder.create_builder_config()
    optimization_profile = builder.create_optimization_profile()
    optimization_profile.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimization_profile)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if not 0 <= options.opt_level <= 5:
        raise InputError(f"--opt-level {options.opt_level}: choose 0..5")
    config.builder_optimization_level = options.opt_level
    if options.workspace_mib is not None:
        if options.workspace_mib < 1:
            raise InputError(f"--workspace {options.workspace_mib}: must be at least 1 MiB")
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if api.kind == "tensorrt-rtx":
        config.num_compute_capabilities = len(targets)
        for index, target in enumerate(targets):
            # The GPU present may have no named member (e.g. sm90): CURRENT compiles for it.
            member = (trt.ComputeCapability.CURRENT if gpu is not None and target == gpu.capability
                      else rtx_capability(api, target))
            config.set_compute_capability(member, index)
    cache = None
    if options.timing_cache is not None:
        if not api.has_timing_cache:
            warnings.append(f"--timing-cache {options.timing_cache} not used: {api.name} has no timing "
                            "cache (its timing cache operations are no-ops since TensorRT-RTX 1.2)")
        else:
            blob = options.timing_cache.read_bytes() if options.timing_cache.is_file() else b""
            cache = config.create_timing_cache(blob)
            if not config.set_timing_cache(cache, False):
                raise InputError(f"{options.timing_cache}: timing cache does not match this GPU or "
                                 f"{api.describe()}; delete it or give another file")
    return config, cache


def build_engine(onnx_path: str | os.PathLike, output: str | os.PathLike, options: BuildOptions, *,
                 checkpoint: dict | None = None, force: bool = False, command: str | None = None,
                 expect_precision: str | None = None, expect_stages: int | None = None) -> EngineResult:
    """Build an engine from a SAPNet ONNX and write it with its sidecar ``<output>.json``, atomically.

    Args:
        onnx_path: fp32, fp16 or int8 (``tensorrt`` QDQ profile) export from ``sapnet-export onnx``.
        output: the engine file (``.engine``).
        options: builder, profile, targets, timing cache, workspace, optimization level.
        checkpoint: ``{"name", "path", "sha256"}`` of the weights when known (the ONNX metadata's
            ``checkpoint_sha256`` is recorded otherwise).
        force: replace an existing engine.
        command: recorded in the sidecar (default: this process's argv).
        expect_precision, expect_stages: what the caller asked for (``--fp16``/``--int8``,
            ``--stages``); the graph must agree, since precision and stages live in it.

    Returns:
        :class:`EngineResult`; its ``warnings`` include a calibration/OPT shape mismatch and an unused
        timing cache.

    Raises:
        InputError: missing or non-SAPNet ONNX, a cpu-profile int8 graph, a graph that is not the
            expected precision or stages, output exists without ``force``, bad shapes/targets/options,
            no builder installed.
        BuildFailed: the parser or builder failed; nothing is written.
    """
    onnx_path, output = Path(onnx_path), Path(output)
    check_output(output, force=force)
    check_output(sidecar_path(output))  # its companion, replaced with it
    if options.timing_cache is not None:
        check_output(options.timing_cache, option="--timing-cache")
    meta, precision, static = _check_graph(onnx_path)
    if expect_precision is not None and expect_precision != precision:
        raise InputError(f"{onnx_path}: the graph is {precision}, --{expect_precision} asked; precision "
                         f"lives in the graph: convert with 'sapnet-export onnx --precision "
                         f"{expect_precision}' or build from --weights")
    if expect_stages is not None and "stages" in meta and int(meta["stages"]) != expect_stages:
        raise InputError(f"{onnx_path}: exported with {meta['stages']} stages, --stages {expect_stages} asked")
    profile = _resolve_profile(options.profile, static, onnx_path, meta)
    gpu = current_gpu()
    api = choose_builder(options.builder, gpu)
    targets = _resolve_targets(api, options.targets, gpu)
    warnings = [w for w in (_calibration_warning(meta, profile),) if w]
    logger = collecting_logger(api)
    builder = api.trt.Builder(logger)
    network = builder.create_network(api.network_flags())
    parser = api.trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise BuildFailed(f"{onnx_path}: {api.describe()}'s ONNX parser rejected it: {'; '.join(errors)}")
    config, cache = _configure(api, builder, options, profile, targets, gpu, warnings)
    start = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - start
    if blob is None:
        raise BuildFailed(f"{onnx_path}: {api.describe()} failed to build the engine: "
                          f"{'; '.join(logger.errors()) or 'no error logged'}; nothing was written")
    layers = network_layers(network)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "toolkit": {"name": "sapnet-export", "version": __version__},
        "builder": {"kind": api.kind, "name": api.name, "version": api.version,
                    "onnx_parser_version": _parser_version(api)},
        "target": {"compute_capabilities": targets, "gpu": gpu.name if gpu and api.kind == "tensorrt"
                   else None, "built_on_gpu": gpu.name if gpu else None},
        "precision": precision,
        "stages": int(meta["stages"]) if "stages" in meta else None,
        "profile": {"input": INPUT_NAME, **profile.to_json()},
        "io": [_tensor_io(network.get_input(0), "input"), _tensor_io(network.get_output(0), "output")],
        "sha256": {"engine": None, "onnx": sha256_file(onnx_path),
                   "checkpoint": (checkpoint or {}).get("sha256") or meta.get("checkpoint_sha256"),
                   "calibration_manifest": None},
        "files": {"onnx": str(onnx_path), "checkpoint": (checkpoint or {}).get("path")
                  or meta.get("checkpoint")},
        "calibration": _calibration_provenance(meta),
        "build_seconds": build_s,
        "settings": {"optimization_level": options.opt_level, "workspace_mib": options.workspace_mib,
                     "profiling_verbosity": "DETAILED", "network_flags": api.network_flags(),
                     "timing_cache": str(options.timing_cache) if options.timing_cache else None,
                     "timing_cache_used": cache is not None},
        "layers": {"count": len(layers), "precisions": precision_histogram(layers), "list": layers},
        "builder_warnings": logger.warnings()[:50],
        "warnings": warnings,
        "onnx_metadata": meta,
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if sidecar["calibration"]:
        sidecar["sha256"]["calibration_manifest"] = sidecar["calibration"]["manifest_sha256"]
    side = sidecar_path(output)
    with atomic_outputs([output, side], force=force) as (tmp, tmp_side):
        with open(tmp, "wb") as handle:
            handle.write(blob)
        sidecar["sha256"]["engine"] = sha256_file(tmp)
        sidecar["size_bytes"] = tmp.stat().st_size
        tmp_side.write_text(to_json(sidecar))
        if cache is not None:
            with atomic_output(options.timing_cache) as tmp_cache:
                tmp_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return EngineResult(path=output, sidecar_path=side, sidecar=sidecar, size_bytes=sidecar["size_bytes"],
                        build_s=build_s, warnings=warnings)


def _parser_version(api: TrtApi) -> str | None:
    getter = getattr(api.trt, "get_nv_onnx_parser_version", None)
    return str(getter()) if getter else None
