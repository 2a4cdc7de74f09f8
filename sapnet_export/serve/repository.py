"""``sapnet-export triton-repo``: a Triton model repository for the Triton container (docs/serving.md).

Layout (Triton docs, "Model Repository")::

    REPO/NAME/config.pbtxt
    REPO/NAME/1/model.onnx                      (platform "onnxruntime_onnx")
    REPO/NAME/1/model_sm89.plan (+ .json)       (platform "tensorrt_plan", one plan per compute
                                                 capability, chosen by cc_model_filenames)

The configuration is built as Triton's own ``ModelConfig`` protobuf (``tritonclient.grpc.
model_config_pb2``), written in protobuf text format, parsed back and compared with the model file's
inputs and outputs before anything lands; the ``NAME`` folder is written beside its destination and
renamed into place, so a failed run leaves nothing and an old repository entry is replaced whole.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.errors import InputError
from sapnet_export.fileio import check_output, temporary_path
from sapnet_export.model.triton_contract import DIMS, INPUT_NAME, OUTPUT_NAME, PARAM_PREFIX

#: Element types of the toolkit's files -> Triton's TYPE_* names.
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
_ONNX_TYPES = {1: "float32", 10: "float16"}


@dataclass(frozen=True)
class RepoOptions:
    """``triton-repo`` options: model ``name``; ``max_batch`` (``max_batch_size``); ``instances`` per
    device; ``kind`` ``cpu`` or ``gpu``; ``trt_accelerator`` (``fp16``: ONNX Runtime's TensorRT
    execution accelerator on the GPU) and ``openvino_accelerator`` (on the CPU);
    ``batch_delay_us``; ``warmup`` (H, W) of the warm-up frame; ``container_tensorrt``: the TensorRT
    version (``10.7.0.23``, at least major.minor.patch) of the Triton container that will load the
    plans, read from its release notes (docs/serving.md), checked against each plan's builder."""

    name: str = "sapnet"
    max_batch: int = 4
    instances: int = 1
    kind: str = "cpu"
    trt_accelerator: str | None = None
    openvino_accelerator: bool = False
    batch_delay_us: int = 0
    warmup: tuple[int, int] = (480, 640)
    container_tensorrt: str | None = None


def check_container_tensorrt(engine: Path, built_with: str, container: str) -> None:
    """Refuse a plan that the container's TensorRT will not deserialize: TensorRT engines are
    compatible only with the version that built them (TensorRT developer guide, "Version
    Compatibility"; the toolkit does not build version-compatible engines). Versions are compared on
    the components both give (``10.7.0`` matches ``10.7.0.23``).

    Raises:
        InputError: ``container`` is not a version of at least three numeric components, or it
            differs from ``built_with`` (the engine sidecar's ``builder.version``).
    """
    parts = container.split(".")
    if len(parts) < 3 or not all(part.isdigit() for part in parts):
        raise InputError(f"--container-tensorrt {container!r}: expected the container's TensorRT "
                         "version, at least major.minor.patch, e.g. 10.7.0 or 10.7.0.23")
    built = built_with.split(".")
    common = min(len(parts), len(built))
    if parts[:common] != built[:common]:
        raise InputError(f"{engine}: built by TensorRT {built_with}; the container's TensorRT is "
                         f"{container}, and a TensorRT engine loads only in the version that built "
                         f"it. Build the engine with TensorRT {container} (the container itself has "
                         "trtexec), or choose the NGC release whose TensorRT is "
                         f"{'.'.join(built[:3])} (docs/serving.md)")


def _onnx_model(path: Path) -> tuple[dict, dict[str, str]]:
    """``({"rainy": dtype, "derained": dtype}, toolkit metadata)`` of an ONNX export.

    Raises:
        InputError: not a toolkit export, or a shared-pooling one (a second input Triton clients do
            not send).
    """
    from sapnet_export.model.onnx_meta import check_io, graph_precision, load_onnx, metadata

    proto = load_onnx(path)
    if check_io(proto, path):
        raise InputError(f"{path}: a --shared-pooling export has a second input (pool_weights) that "
                         "clients do not send; export without --shared-pooling for Triton")
    types = {}
    for value in (*proto.graph.input, *proto.graph.output):
        elem = value.type.tensor_type.elem_type
        if elem not in _ONNX_TYPES:
            raise InputError(f"{path}: {value.name} has ONNX element type {elem}, not float32/float16")
        types[value.name] = _ONNX_TYPES[elem]
    meta = metadata(proto)
    return types, {"precision": graph_precision(proto), "stages": meta.get("stages", ""),
                   "backend": "onnxruntime", "model": path.name}


def _engine_models(paths: list[Path], container_tensorrt: str | None = None,
                   ) -> tuple[dict, dict[str, str], dict[str, Path]]:
    """I/O types, metadata and ``{"8.9": engine}`` of TensorRT engines built by ``sapnet-export trt``.

    Raises:
        InputError: a missing sidecar, a TensorRT-RTX engine (its runtime is not Triton's TensorRT
            backend), an engine that is not built by ``container_tensorrt``
            (:func:`check_container_tensorrt`), two engines for one compute capability, or engines
            that differ in I/O.
    """
    from sapnet_export.engine.sidecar import load_sidecar

    types, meta, plans = None, {}, {}
    for path in paths:
        sidecar = load_sidecar(path)
        builder = sidecar["builder"]
        if builder["kind"] != "tensorrt":
            raise InputError(f"{path}: built by {builder['name']} {builder['version']}; a TensorRT-RTX "
                             "engine needs the TensorRT-RTX runtime, which Triton's TensorRT backend "
                             "(platform tensorrt_plan) does not load. Serve the ONNX file instead "
                             "(triton-repo --onnx, --kind gpu --trt-accelerator fp16) or build the "
                             "engine with full TensorRT (sapnet-export trt --builder tensorrt)")
        if container_tensorrt is not None:
            check_container_tensorrt(path, builder["version"], container_tensorrt)
        io = {e["name"]: e["dtype"] for e in sidecar["io"]}
        if types is not None and io != types:
            raise InputError(f"{path}: inputs/outputs {io} differ from the other engines' {types}")
        types = io
        for cc in sidecar["target"]["compute_capabilities"]:
            key = f"{cc[2:-1]}.{cc[-1]}" if cc.startswith("sm") else cc
            if key in plans:
                raise InputError(f"{path} and {plans[key]}: two engines for compute capability {key}")
            plans[key] = path
        meta = {"precision": sidecar["precision"], "stages": str(sidecar.get("stages", "")),
                "backend": "tensorrt", "tensorrt_version": builder["version"],
                "model": ",".join(p.name for p in paths), "max_batch_profile": str(sidecar["profile"]["max"][0])}
    return types, meta, plans


def _plan_files(engines: list[Path], options: RepoOptions):  # noqa: ANN202 - (types, meta, plans, files)
    """For ``tensorrt_plan``: I/O types, metadata, ``cc_model_filenames`` (``{"8.9": "model_sm89.plan"}``)
    and ``{file name in 1/: source}`` (plans and their sidecars).

    Raises:
        InputError: see :func:`_engine_models`; not ``--kind gpu``, accelerators asked, or a
            ``--max-batch`` beyond the engines' optimization profile.
    """
    from sapnet_export.engine.sidecar import sidecar_path

    if options.kind != "gpu" or options.trt_accelerator or options.openvino_accelerator:
        raise InputError("TensorRT plans run on the GPU only: --kind gpu, without accelerators")
    types, meta, by_cc = _engine_models(engines, options.container_tensorrt)
    if options.max_batch > int(meta["max_batch_profile"]):
        raise InputError(f"--max-batch {options.max_batch}: the engines' optimization profile "
                         f"takes at most {meta['max_batch_profile']} frames")
    plans = {cc: f"model_sm{cc.replace('.', '')}.plan" for cc in by_cc}
    files = {plans[cc]: path for cc, path in by_cc.items()}
    files.update({f"{name}.json": sidecar_path(by_cc[cc]) for cc, name in plans.items()})
    return types, meta, plans, files


def build_config(options: RepoOptions, platform: str, types: dict[str, str], meta: dict[str, str],
                 plans: dict[str, str] | None = None):  # noqa: ANN201 - model_config_pb2.ModelConfig
    """The ``ModelConfig`` protobuf of the repository entry (dims -1, dynamic batching, instances,
    warm-up with a real frame size, accelerators, the toolkit's metadata in ``parameters``)."""
    from tritonclient.grpc import model_config_pb2 as pb

    config = pb.ModelConfig(name=options.name, platform=platform, max_batch_size=options.max_batch)
    for tensors, name in ((config.input, INPUT_NAME), (config.output, OUTPUT_NAME)):
        tensor = tensors.add(name=name, dims=list(DIMS))
        tensor.data_type = pb.DataType.Value(TRITON_TYPES[types[name]])
    config.dynamic_batching.max_queue_delay_microseconds = options.batch_delay_us
    kind = pb.ModelInstanceGroup.KIND_GPU if options.kind == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(count=options.instances, kind=kind)
    warmup = config.model_warmup.add(name=f"frame_{options.warmup[0]}x{options.warmup[1]}", batch_size=1)
    warmup.inputs[INPUT_NAME].data_type = pb.DataType.Value(TRITON_TYPES[types[INPUT_NAME]])
    warmup.inputs[INPUT_NAME].dims.extend([3, *options.warmup])
    warmup.inputs[INPUT_NAME].random_data = True
    if options.trt_accelerator:
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accelerator.parameters["precision_mode"] = options.trt_accelerator.upper()
    if options.openvino_accelerator:
        config.optimization.execution_accelerators.cpu_execution_accelerator.add(name="openvino")
    for key, value in (plans or {}).items():
        config.cc_model_filenames[key] = value
    for key, value in meta.items():
        config.parameters[f"{PARAM_PREFIX}{key}"].string_value = str(value)
    return config


def check_config(text: str, types: dict[str, str]):  # noqa: ANN201 - the parsed ModelConfig
    """Parse ``text`` into Triton's ``ModelConfig`` and check its tensors against the model file's.

    Raises:
        InputError: the text does not parse, or an input/output differs in name, type or dims.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    try:
        config = text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise InputError(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from exc
    for tensors, name in ((config.input, INPUT_NAME), (config.output, OUTPUT_NAME)):
        found = [(t.name, pb.DataType.Name(t.data_type), list(t.dims)) for t in tensors]
        expected = [(name, TRITON_TYPES[types[name]], list(DIMS))]
        if found != expected:
            raise InputError(f"config.pbtxt {name}: {found} does not match the model file's {expected}")
    return config


def write_repository(repo: Path, options: RepoOptions, *, onnx: Path | None = None,
                     engines: list[Path] | None = None, force: bool = False) -> Path:
    """Write ``repo/NAME`` (see the module docstring) and return it.

    Raises:
        InputError: bad model files (see :func:`_onnx_model`, :func:`_engine_models`), options that do
            not fit them (engines on the CPU, accelerators of the other kind, a batch beyond an
            engine's profile), ``repo/NAME`` exists without ``force``, or the config fails its check.
    """
    from google.protobuf import text_format

    if (onnx is None) == (not engines):
        raise InputError("give --onnx F.onnx or --engine F.engine (one or more engines), not both")
    final = check_output(Path(repo) / options.name, force=force, kind="folder")
    if options.trt_accelerator and options.kind != "gpu":
        raise InputError("--trt-accelerator runs on the GPU: add --kind gpu")
    if options.openvino_accelerator and options.kind != "cpu":
        raise InputError("--openvino-accelerator is ONNX Runtime's CPU accelerator: use --kind cpu")
    if onnx is not None:
        types, meta = _onnx_model(Path(onnx))
        platform, files, plans = "onnxruntime_onnx", {"model.onnx": Path(onnx)}, None
    else:
        types, meta, plans, files = _plan_files([Path(e) for e in engines], options)
        platform = "tensorrt_plan"
    text = text_format.MessageToString(build_config(options, platform, types, meta, plans))
    check_config(text, types)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp, aside = temporary_path(final, folder=True), None
    try:
        (tmp / "1").mkdir()
        (tmp / "config.pbtxt").write_text(text)
        for name, source in files.items():
            shutil.copyfile(source, tmp / "1" / name)
        if final.exists():  # the old entry goes aside whole, and comes back if the rename fails
            aside = temporary_path(final, folder=True, suffix=".bak.tmp")
            os.replace(final, aside)
        os.replace(tmp, final)
    except OSError as exc:
        if aside is not None and not final.exists():
            os.replace(aside, final)
            aside = None
        raise InputError(f"{final}: cannot be written: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return final
