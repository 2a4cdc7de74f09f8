"""Typed ONNX -> TensorRT / TensorRT-RTX engine, with its provenance sidecar (docs/design.md sections 3 and 5).

The precision is the ONNX graph's (fp32, fp16, or int8 QDQ with the ``tensorrt`` profile); the builder
compiles it as a strongly typed network, so one code path serves TensorRT 10, TensorRT 11 and
TensorRT-RTX (:mod:`sapnet_export.engine.trt_api`). :func:`build_engine` is four named steps, in the
spirit of Polygraphy's loaders: :func:`parse_network` (check the graph, choose the builder and the
profile, parse) -> :func:`configure` (the builder config) -> :func:`build_serialized` -> write
(:func:`sapnet_export.engine.sidecar.write_engine`). Build times: docs/measurements.md ("Engines").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.fileio import atomic_output, check_output
from sapnet_export.model.onnx_meta import INPUT_NAME, check_identity, load_onnx
from .network_info import network_layers, precision_histogram, tensor_io
from .plan import DEFAULT_PROFILE, calibration_warning, check_graph, resolve_profile, resolve_targets
from .sidecar import Profile, make_sidecar, sidecar_path, write_engine
from .trt_api import Gpu, TrtApi, choose_builder, collecting_logger, current_gpu, rtx_capability

__all__ = ["DEFAULT_PROFILE", "BuildFailed", "BuildOptions", "EngineResult", "ParsedNetwork", "build_engine",
           "build_serialized", "configure", "describe_build", "network_layers", "parse_network"]

#: Builder optimization level TensorRT uses when none is set (0 fastest build .. 5 most tactics).
DEFAULT_OPT_LEVEL = 3


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


@dataclass
class ParsedNetwork:
    """What :func:`parse_network` gives: the graph checked and parsed by the chosen builder.

    Attributes:
        onnx_path: the graph; meta: its ``metadata_props``; precision: ``fp32``/``fp16``/``int8``.
        api: the builder's Python API; gpu: the GPU present (None without one); targets: the compute
            capabilities compiled for (``smXY``); profile: the optimization profile.
        logger, builder, network, parser: the TensorRT objects (the parser and logger must outlive
            the network).
        warnings: for the user (a calibration/OPT shape mismatch, an unused timing cache).
    """

    onnx_path: Path
    meta: dict[str, str]
    precision: str
    api: TrtApi
    gpu: Gpu | None
    targets: list[str]
    profile: Profile
    logger: object
    builder: object
    network: object
    parser: object
    warnings: list[str] = field(default_factory=list)


def parse_network(onnx_path: Path, options: BuildOptions, *, expect_precision: str | None = None,
                  expect_stages: int | None = None) -> ParsedNetwork:
    """Step 1: check the graph (SAPNet I/O, TensorRT's QDQ rules, the precision and stages asked),
    resolve the profile, choose the builder and the targets, and parse the ONNX into a network.

    Raises:
        InputError: see :func:`build_engine`. BuildFailed: the ONNX parser rejected the graph.
    """
    meta, precision, static = check_graph(onnx_path)
    if expect_precision is not None and expect_precision != precision:
        raise InputError(f"{onnx_path}: the graph is {precision}, --{expect_precision} asked; precision "
                         f"lives in the graph: convert with 'sapnet-export onnx --precision "
                         f"{expect_precision}' or build from --weights")
    if expect_stages is not None and "stages" in meta and int(meta["stages"]) != expect_stages:
        raise InputError(f"{onnx_path}: exported with {meta['stages']} stages, --stages {expect_stages} asked")
    profile = resolve_profile(options.profile, static, onnx_path, meta)
    gpu = current_gpu()
    api = choose_builder(options.builder, gpu)
    targets = resolve_targets(api, options.targets, gpu)
    logger = collecting_logger(api)
    builder = api.trt.Builder(logger)
    network = builder.create_network(api.network_flags())
    parser = api.trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise BuildFailed(f"{onnx_path}: {api.describe()}'s ONNX parser rejected it: {'; '.join(errors)}")
    return ParsedNetwork(onnx_path=onnx_path, meta=meta, precision=precision, api=api, gpu=gpu,
                         targets=targets, profile=profile, logger=logger, builder=builder,
                         network=network, parser=parser,
                         warnings=[w for w in (calibration_warning(meta, profile),) if w])


def configure(parsed: ParsedNetwork, options: BuildOptions) -> tuple[object, object | None]:
    """Step 2: the builder config (and the timing cache object for full TensorRT): profile,
    optimization level, workspace, TensorRT-RTX compute capabilities, timing cache.

    Raises:
        InputError: ``opt_level`` outside 0..5, ``workspace_mib`` < 1, a timing cache that does not
            match this GPU or builder.
    """
    api, builder, profile, targets, gpu = (parsed.api, parsed.builder, parsed.profile, parsed.targets,
                                           parsed.gpu)
    warnings = parsed.warnings
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


def build_serialized(parsed: ParsedNetwork, config: object) -> tuple[object, float]:
    """Step 3: ``build_serialized_network``; returns the serialized engine and the seconds it took.

    Raises:
        BuildFailed: the builder returned nothing (its errors in the message).
    """
    start = time.perf_counter()
    blob = parsed.builder.build_serialized_network(parsed.network, config)
    build_s = time.perf_counter() - start
    if blob is None:
        raise BuildFailed(f"{parsed.onnx_path}: {parsed.api.describe()} failed to build the engine: "
                          f"{'; '.join(parsed.logger.errors()) or 'no error logged'}; nothing was written")
    return blob, build_s


def describe_build(parsed: ParsedNetwork, options: BuildOptions, build_s: float, cache_used: bool, *,
                   checkpoint: dict | None = None, command: str | None = None) -> dict:
    """The sidecar of this build (:func:`sapnet_export.engine.sidecar.make_sidecar`)."""
    api, gpu, network = parsed.api, parsed.gpu, parsed.network
    layers = network_layers(network)
    return make_sidecar(
        builder={"kind": api.kind, "name": api.name, "version": api.version,
                 "onnx_parser_version": _parser_version(api)},
        target={"compute_capabilities": parsed.targets,
                "gpu": gpu.name if gpu and api.kind == "tensorrt" else None,
                "built_on_gpu": gpu.name if gpu else None},
        precision=parsed.precision, meta=parsed.meta, profile=parsed.profile, input_name=INPUT_NAME,
        io=[tensor_io(network.get_input(0), "input"), tensor_io(network.get_output(0), "output")],
        layers={"count": len(layers), "precisions": precision_histogram(layers), "list": layers},
        onnx_path=parsed.onnx_path, checkpoint=checkpoint, build_s=build_s,
        settings={"optimization_level": options.opt_level, "workspace_mib": options.workspace_mib,
                  "profiling_verbosity": "DETAILED", "network_flags": api.network_flags(),
                  "timing_cache": str(options.timing_cache) if options.timing_cache else None,
                  "timing_cache_used": cache_used},
        builder_warnings=parsed.logger.warnings(), warnings=parsed.warnings, command=command)


def build_engine(onnx_path: str | os.PathLike, output: str | os.PathLike, options: BuildOptions, *,
                 checkpoint: dict | None = None, force: bool = False, command: str | None = None,
                 expect_precision: str | None = None, expect_stages: int | None = None,
                 allow_foreign_model: bool = False) -> EngineResult:
    """Build an engine from a SAPNet ONNX and write it with its sidecar ``<output>.json``, atomically:
    :func:`parse_network` -> :func:`configure` -> :func:`build_serialized` -> write.

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
    # The model-identity check (onnx_meta.check_identity): a foreign ONNX only with allow_foreign_model,
    # recorded in the sidecar so that the engine's Runners refuse it too unless allowed.
    parsed = parse_network(onnx_path, options, expect_precision=expect_precision, expect_stages=expect_stages)
    foreign = check_identity(load_onnx(onnx_path), onnx_path, allow_foreign=allow_foreign_model)
    config, cache = configure(parsed, options)
    blob, build_s = build_serialized(parsed, config)
    sidecar = describe_build(parsed, options, build_s, cache is not None, checkpoint=checkpoint,
                             command=command)
    sidecar["foreign_model"] = foreign
    if cache is not None:  # the cache holds this build's timings whether or not the engine lands
        with atomic_output(options.timing_cache) as tmp_cache:
            tmp_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    side = write_engine(output, blob, sidecar, force=force)
    return EngineResult(path=output, sidecar_path=side, sidecar=sidecar, size_bytes=sidecar["size_bytes"],
                        build_s=build_s, warnings=parsed.warnings)


def _parser_version(api: TrtApi) -> str | None:
    getter = getattr(api.trt, "get_nv_onnx_parser_version", None)
    return str(getter()) if getter else None
