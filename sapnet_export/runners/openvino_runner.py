"""The OpenVINO Runner: the toolkit's ONNX files (fp32, fp16, int8 QDQ) on Intel CPUs, GPUs and NPUs.

OpenVINO reads the ONNX file itself (``openvino.Core.read_model``) and compiles it for a device. Three
of its defaults would change results or hide what ran, so this Runner pins them and says so in
:attr:`RunnerInfo.settings <sapnet_export.runners.base.RunnerInfo>`:

- ``INFERENCE_PRECISION_HINT``: on CPUs with AVX512-BF16 or AMX, OpenVINO computes in bf16 unless told
  otherwise (measured here: 142 dB fidelity with f32, 60 dB with its bf16 default). Pinned to f32; bf16
  only when asked (``precision="bf16"``), and refused where the CPU has no native bf16 unless forced.
- ``PERFORMANCE_HINT``: LATENCY (one stream, every thread on one frame) for single frames and tiles;
  THROUGHPUT (the streams OpenVINO chooses, one frame per stream) for batches of several frames.
- the device: ``CPU`` by default; ``GPU``, ``NPU``, ``AUTO`` only where present, never a fallback.

One graph pattern OpenVINO runs wrongly: int8 (signed) activation QuantizeLinear/DequantizeLinear pairs
on a CPU without AMX. The ``tensorrt`` profile's graph (int8 symmetric activations) came out at 26.3 dB
from ONNX Runtime fp32 in OpenVINO 2026.4.1 where ONNX Runtime ran the same file at 45.3 dB (Rain100L
``1.png``, AVX-512 VNNI, no AMX; docs/measurements.md, "The CPU paths with the openvino profile
fixed"). Such a graph is handed to OpenVINO with every activation pair rewritten as the uint8 pair
that computes the same values (:func:`~sapnet_export.model.qdq_uint8.activations_to_uint8`;
45.3 dB then), and ``settings["int8_activations"]`` says how many nodes were rewritten.

Source: OpenVINO 2026 Python API (``openvino.Core``, ``CompiledModel``, ``AsyncInferQueue``) and its
property reference (``ov::hint::inference_precision``, ``ov::hint::performance_mode``,
``ov::cache_dir``, ``ov::device::capabilities``).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from sapnet_export.errors import CheckFailed, InputError
from sapnet_export.model.onnx_meta import OUTPUT_NAME, graph_precision
from .base import RunnerInfo
from .onnx_file import OnnxFileRunner

#: ``--device`` names of this Runner (case-insensitive) -> OpenVINO device; ``GPU.1`` and the like pass as given.
DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}
#: Devices whose plugin runs a model with dynamic N, H, W (one compiled model for every frame size);
#: the others get one compiled model per input shape, at most :data:`MAX_SHAPES` kept.
DYNAMIC_DEVICES = ("CPU", "GPU", "AUTO")
MAX_SHAPES = 8
#: ``precision`` asked -> OpenVINO ``INFERENCE_PRECISION_HINT``.
HINTS = {"fp32": "f32", "bf16": "bf16"}


def default_cache_dir() -> Path:
    """Where compiled models are cached between processes (OpenVINO's ``CACHE_DIR``):
    ``$SAPNET_OPENVINO_CACHE``, else ``$XDG_CACHE_HOME/sapnet-export/openvino`` (``~/.cache`` by default)."""
    if os.environ.get("SAPNET_OPENVINO_CACHE"):
        return Path(os.environ["SAPNET_OPENVINO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sapnet-export" / "openvino"


def openvino_versions() -> dict[str, str]:
    """``{"openvino": version}`` of the installed wheel (and ``nncf`` when it is installed).

    Raises:
        InputError: OpenVINO is not installed; the message says how to install it.
    """
    try:
        versions = {"openvino": importlib.metadata.version("openvino")}
    except importlib.metadata.PackageNotFoundError:
        raise InputError("OpenVINO is not installed: pip install 'sapnet-export[openvino]'") from None
    try:
        versions["nncf"] = importlib.metadata.version("nncf")
    except importlib.metadata.PackageNotFoundError:
        pass
    return versions


def check_bf16(capabilities: list[str] | tuple[str, ...], native: bool, device: str, force: bool) -> str | None:
    """Whether bf16 may be asked for on ``device``.

    Args:
        capabilities: the device's ``OPTIMIZATION_CAPABILITIES``.
        native: for ``CPU``, whether the CPU has AVX512-BF16 or AMX-BF16
            (:func:`sapnet_export.machine.cpu_features`); ignored for other devices.
        force: run bf16 anyway (OpenVINO then emulates it or computes in f32; what it did is recorded).

    Returns:
        None when bf16 is native, else the note for :attr:`RunnerInfo.settings` when forced.

    Raises:
        InputError: bf16 is not native and ``force`` is False.
    """
    missing = []
    if "BF16" not in capabilities:
        missing.append(f"OpenVINO's {device} capabilities ({', '.join(capabilities)}) have no BF16")
    if device == "CPU" and not native:
        missing.append("the CPU has neither AVX512-BF16 nor AMX-BF16")
    if not missing:
        return None
    if not force:
        raise InputError(f"--precision bf16: {'; '.join(missing)}, so bf16 would be emulated or ignored; "
                         "use fp32 (the default), or --force-bf16 to run it anyway")
    return "forced: " + "; ".join(missing)


class OpenVinoRunner(OnnxFileRunner):
    """Runs an exported SAPNet ONNX file (fp32, fp16, int8 QDQ; plain or shared-pooling) in OpenVINO.

    Args:
        path: the ONNX file (input ``rainy`` float32 [N, 3, H, W] in [0, 1], output ``derained``).
        device: ``cpu`` (default), ``gpu``, ``npu``, ``auto`` (:data:`DEVICES`) or an OpenVINO device
            name such as ``GPU.1``; it must be in ``Core.available_devices``.
        precision: None for the graph's own precision computed with the f32 hint (fp16 weights and
            int8 QDQ graphs included); ``bf16`` for the bf16 hint (the precision of an fp32 graph
            becomes ``bf16``; an int8 graph stays ``int8`` with its float parts in bf16); ``fp32``,
            ``fp16`` or ``int8`` only as the graph's own precision.
        force_bf16: allow ``bf16`` where it is not native (:func:`check_bf16`).
        threads: ``INFERENCE_NUM_THREADS`` (None: every core, OpenVINO's choice, recorded).
        cache_dir: OpenVINO's ``CACHE_DIR`` (compiled blobs reused across processes); None:
            :func:`default_cache_dir`; ``""`` disables it.
        static_shapes: compile one model per input shape (at most :data:`MAX_SHAPES`) instead of one
            dynamic model; always on for devices outside :data:`DYNAMIC_DEVICES` (the NPU).

    Raises:
        InputError: OpenVINO missing, the file missing or not a SAPNet export, an unknown or absent
            device (the message lists the present ones), a precision the graph does not have, bf16
            where it is not native (without ``force_bf16``), or a model OpenVINO cannot read.
    """

    backend = "openvino"
    split_batches = True

    def __init__(self, path: str | os.PathLike, device: str = "cpu", precision: str | None = None,
                 force_bf16: bool = False, threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                 static_shapes: bool = False) -> None:
        versions = openvino_versions()
        import openvino as ov

        path, proto = self._open(path)
        self.path = path
        self.core = ov.Core()
        self.device = _resolve_device(device, self.core.available_devices)
        graph = graph_precision(proto)
        hint, label, note = self._precision(graph, precision, force_bf16)
        self.config = {"INFERENCE_PRECISION_HINT": hint}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        cache = default_cache_dir() if cache_dir is None else cache_dir
        if str(cache):
            try:
                Path(cache).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"{cache}: cannot be OpenVINO's model cache folder ($SAPNET_OPENVINO_CACHE): "
                                 f"{exc.strerror or exc}") from exc
            self.core.set_property({"CACHE_DIR": str(cache)})
        rewritten = self._read(path, proto, versions["openvino"])
        self.static_shapes = static_shapes or self.device.split(".")[0] not in DYNAMIC_DEVICES
        self._compiled: OrderedDict = OrderedDict()
        latency = self._compile("LATENCY", None if not self.static_shapes else (1, 3, 64, 64))
        settings = {"inference_precision": latency.get_property("INFERENCE_PRECISION_HINT").to_string(),
                    "performance_hint": "LATENCY (batches of several frames: THROUGHPUT)",
                    "shapes": "static, one compiled model per shape" if self.static_shapes else "dynamic N, H, W",
                    "cache_dir": str(cache) or "none",
                    "execution_devices": ",".join(latency.get_property("EXECUTION_DEVICES"))}
        if note:
            settings["bf16"] = note
        if rewritten:
            settings["int8_activations"] = (f"{rewritten} int8 activation Q/DQ nodes read as the equal uint8 "
                                            "pairs (OpenVINO runs int8 activations wrongly without AMX)")
        self.info = RunnerInfo(
            backend="openvino", precision=label, device=self.device, model=str(path),
            stages=self.stages or 0, threads=_threads(latency, threads), versions=versions,
            settings=settings)

    def _read(self, path: Path, proto, version: str) -> int:  # noqa: ANN001 - onnx.ModelProto
        """Read the graph into :attr:`model`; one with int8 activation pairs is read with them
        rewritten as uint8 (module docstring; ``proto`` is changed). Returns how many nodes were
        rewritten.

        Raises:
            InputError: OpenVINO cannot read it, or an activation pair's zero point is not a
                constant (the rewrite does not know such a graph).
        """
        import tempfile

        import onnx

        from sapnet_export.model.qdq_uint8 import activations_to_uint8

        try:
            rewritten = activations_to_uint8(proto)  # the graph _open loaded for this Runner alone
        except CheckFailed as exc:
            raise InputError(f"{path}: {exc}") from exc
        try:
            if not rewritten:
                self.model = self.core.read_model(str(path))
                return 0
            with tempfile.TemporaryDirectory(prefix="sapnet-ov-") as folder:
                onnx.save(proto, os.path.join(folder, "uint8-activations.onnx"))
                self.model = self.core.read_model(os.path.join(folder, "uint8-activations.onnx"))
        except RuntimeError as exc:
            raise InputError(f"{path}: OpenVINO {version} cannot read it: {exc}") from exc
        return rewritten

    def _precision(self, graph: str, asked: str | None, force: bool) -> tuple[str, str, str | None]:
        """(INFERENCE_PRECISION_HINT, the precision RunnerInfo says, the bf16 note) for ``asked``."""
        if asked in (None, graph):
            return HINTS["fp32"], graph, None
        if asked != "bf16":
            raise InputError(f"--precision {asked}: this {graph} graph runs as {graph} or, on OpenVINO, "
                             "bf16; export another precision with 'sapnet-export onnx --precision'")
        if graph == "fp16":
            raise InputError("--precision bf16 is for fp32 and int8 graphs; this one is fp16: run the "
                             "fp32 export with --precision bf16")
        from sapnet_export.machine import cpu_features

        capabilities = self.core.get_property(self.device, "OPTIMIZATION_CAPABILITIES")
        note = check_bf16(capabilities, cpu_features()["native_bf16"], self.device.split(".")[0], force)
        return HINTS["bf16"], "bf16" if graph == "fp32" else graph, note

    def _compile(self, mode: str, shape: tuple[int, ...] | None):  # noqa: ANN202 - ov.CompiledModel
        """The compiled model for ``mode`` (LATENCY or THROUGHPUT) and input ``shape`` (None: dynamic),
        compiled on first use; the least recently used one goes beyond :data:`MAX_SHAPES`."""
        key = (mode, shape)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key][0]
        model = self.model
        if shape is not None:
            model = self.model.clone()
            model.reshape({port.get_any_name(): [shape[0], port.get_partial_shape()[1].get_length(), *shape[2:]]
                           for port in model.inputs})
        try:
            compiled = self.core.compile_model(model, self.device, {**self.config, "PERFORMANCE_HINT": mode})
        except RuntimeError as exc:
            raise InputError(f"{self.path}: OpenVINO could not compile it for {self.device}: {exc}") from exc
        self._compiled[key] = (compiled, compiled.create_infer_request())
        if len(self._compiled) > MAX_SHAPES:
            self._compiled.popitem(last=False)
        return compiled

    def _shape(self, feeds: dict[str, np.ndarray]) -> tuple[int, ...] | None:
        return next(iter(feeds.values())).shape if self.static_shapes else None

    def _infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        key = ("LATENCY", self._shape(feeds))
        self._compile(*key)
        request = self._compiled[key][1]
        request.infer(feeds)
        return np.array(request.get_tensor(OUTPUT_NAME).data, dtype=np.float32, copy=True)

    def _infer_all(self, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """One frame: the LATENCY model. Several: the THROUGHPUT model, one infer request per frame
        run as OpenVINO schedules them over its streams (``AsyncInferQueue``)."""
        if len(feeds) == 1:
            return [self._infer(feeds[0])]
        import openvino as ov

        compiled = self._compile("THROUGHPUT", self._shape(feeds[0]))
        outputs: list[np.ndarray | None] = [None] * len(feeds)

        def done(request, index: int) -> None:  # noqa: ANN001 - ov.InferRequest
            outputs[index] = np.array(request.get_tensor(OUTPUT_NAME).data, dtype=np.float32, copy=True)

        queue = ov.AsyncInferQueue(compiled, 0)
        queue.set_callback(done)
        for index, feed in enumerate(feeds):
            queue.start_async(feed, index)
        queue.wait_all()
        return outputs

    @property
    def streams(self) -> int | None:
        """Streams of the THROUGHPUT model (None until a batch of several frames compiled it)."""
        for (mode, _), (compiled, _request) in self._compiled.items():
            if mode == "THROUGHPUT":
                return int(compiled.get_property("NUM_STREAMS"))
        return None


def _resolve_device(device: str, available: list[str]) -> str:
    """The OpenVINO device for ``device``; InputError unless it is known and present (no fallback)."""
    name = DEVICES.get(device.lower(), device)
    if name.split(".")[0] not in DEVICES.values():
        raise InputError(f"device {device!r}: choose one of {', '.join(DEVICES)} (or an OpenVINO device "
                         "such as GPU.1)")
    if name != "AUTO" and name not in available and not (name in ("GPU", "NPU") and
                                                         any(d.startswith(name + ".") for d in available)):
        raise InputError(f"device {device!r}: OpenVINO sees no {name} here (present: "
                         f"{', '.join(available) or 'none'}); it never falls back to another device")
    return name


def _threads(compiled, asked: int | None) -> int | None:  # noqa: ANN001 - ov.CompiledModel
    """Threads the compiled model uses (its INFERENCE_NUM_THREADS; 0 means every core)."""
    try:
        value = int(compiled.get_property("INFERENCE_NUM_THREADS"))
    except RuntimeError:
        return asked
    return value or os.cpu_count()
