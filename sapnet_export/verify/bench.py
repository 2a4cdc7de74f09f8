"""``sapnet-export bench``: make every form of the model this machine can run, then verify and time them.

Like Ultralytics' ``benchmark``: one row per format, each made from the same weights with the toolkit's
own commands (:func:`~sapnet_export.export.onnx_export.export_onnx`, :func:`~sapnet_export.engine.build.build_engine`),
then measured by :func:`~sapnet_export.verify.parity.run_verification` against PyTorch fp32. A format that cannot
be made is a row with status ``failed`` and the reason, not a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sapnet_export.export.int8.calibration import CalibrationSet
from sapnet_export.errors import InputError, SapnetError
from sapnet_export.fileio import to_json_line
from sapnet_export.measure.evaluation import refuse_calibration_images
from sapnet_export.provenance import utc_now
from sapnet_export.model.network import SAPNet
from sapnet_export.runners.base import Runner
from .parity import Target, Verification, run_verification
from sapnet_export.model.checkpoints import WeightsInfo


@dataclass(frozen=True)
class Format:
    """A benchmark format: ``name`` (``--formats``), ONNX ``precision``, QDQ ``profile`` for int8,
    ``engine`` (a TensorRT engine built from that ONNX, needs a GPU to run), the ``backend`` that
    runs an ONNX file and the compute precision it is asked for (``run_precision``: OpenVINO's bf16)."""

    name: str
    precision: str
    profile: str | None = None
    engine: bool = False
    backend: str = "onnxruntime"
    run_precision: str | None = None


FORMATS = {f.name: f for f in (
    Format("torch", "fp32"),
    Format("onnx", "fp32"),
    Format("onnx-fp16", "fp16"),
    Format("onnx-int8-cpu", "int8", "cpu"),
    Format("onnx-int8-tensorrt", "int8", "tensorrt"),
    # OpenVINO on the same fp32 file (f32 pinned, or bf16), and on NNCF's int8 graph (f32 or bf16 for
    # what stays float)
    Format("openvino", "fp32", backend="openvino"),
    Format("openvino-bf16", "fp32", backend="openvino", run_precision="bf16"),
    Format("openvino-int8", "int8", "openvino", backend="openvino"),
    Format("openvino-int8-bf16", "int8", "openvino", backend="openvino", run_precision="bf16"),
    Format("tensorrt", "fp32", engine=True),
    Format("tensorrt-fp16", "fp16", engine=True),
    Format("tensorrt-int8", "int8", "tensorrt", engine=True),
)}


def default_formats(gpu: bool) -> list[str]:
    """Every format; engines only where a GPU can run them."""
    return [name for name, fmt in FORMATS.items() if gpu or not fmt.engine]


def parse_formats(text: str | None, gpu: bool) -> list[str]:
    """``--formats a,b`` (None: :func:`default_formats`).

    Raises:
        InputError: an unknown format.
    """
    if not text:
        return default_formats(gpu)
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise InputError(f"--formats {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    return names


def _onnx_name(fmt: Format) -> str:
    return {"fp32": "onnx", "fp16": "onnx-fp16"}.get(fmt.precision, f"onnx-int8-{fmt.profile}")


def make_targets(model: SAPNet, info: WeightsInfo, reference: Runner, formats: Sequence[str],
                 workdir: Path, *, calibration: CalibrationSet | None, stages: int | None,
                 gpu: bool = False, on_step: Callable[[str], None] | None = None) -> list[Target]:
    """Export, convert and build each format into ``workdir`` (replacing earlier files) and open it.

    ``torch`` shares ``reference``. Engines are made only with ``gpu`` (running one needs it). Failures
    become targets with status ``failed`` and the reason.
    """
    from sapnet_export.engine.build import BuildOptions, build_engine
    from sapnet_export.export.onnx_export import Int8Options, export_onnx
    from .parity import open_target

    workdir.mkdir(parents=True, exist_ok=True)
    targets, made = [], {}
    for name in formats:
        fmt = FORMATS[name]
        if on_step:
            on_step(name)
        if name == "torch":
            targets.append(Target(name="torch", runner=reference, is_reference=True))
            continue
        try:
            if fmt.engine and not gpu:
                raise InputError("an engine runs only on a GPU, and there is none here")
            onnx_name = _onnx_name(fmt)
            if onnx_name not in made:
                if fmt.precision == "int8" and calibration is None:
                    raise InputError("int8 needs a calibration set: --calib DIR")
                int8 = (Int8Options(calibration=calibration, profile=fmt.profile)
                        if fmt.precision == "int8" else None)
                made[onnx_name] = export_onnx(model, info, workdir / f"{onnx_name}.onnx", stages=stages,
                                              precision=fmt.precision, int8=int8, force=True).path
            path = made[onnx_name]
            if fmt.engine:
                path = build_engine(path, workdir / f"{name}.engine", BuildOptions(), force=True).path
            target = open_target(str(path), weights=info.name, stages=stages, onnx_backend=fmt.backend,
                                 precision=fmt.run_precision)
            target.name = name
            targets.append(target)
        except SapnetError as exc:
            targets.append(Target(name=name, runner=None, status="failed", reason=str(exc),
                                  precision=fmt.precision,
                                  backend="tensorrt" if fmt.engine else fmt.backend))
    return targets


def run_bench(model: SAPNet, info: WeightsInfo, reference: Runner, formats: Sequence[str],
              items: list[tuple[Path, Path | None]], *, workdir: Path, calibration: CalibrationSet | None,
              stages: int | None, gpu: bool = False, served: Sequence[str] = (),
              on_step: Callable[[str], None] | None = None,
              on_made: Callable[[Target], None] | None = None, **verification) -> Verification:
    """``sapnet-export bench`` as one call: :func:`make_targets` into ``workdir``, then each served
    model in ``served`` (``grpc://HOST:PORT/NAME`` or ``http://...``: a model on a running Triton
    server, the ``triton`` backend of :mod:`sapnet_export.runners.triton_runner`), then
    :func:`~sapnet_export.verify.parity.run_verification` of all of them against ``reference`` on
    ``items`` (``[(image, ground truth or None)]``).

    ``on_made(target)`` is called as each target is ready (or failed); ``verification`` holds the
    keyword arguments of :func:`~sapnet_export.verify.parity.run_verification` (``data``, ``gt``,
    gates, latency ``sizes``/``runs``/``duration_s``, callbacks). The served models' client
    connections are closed before it returns.

    Raises:
        InputError: see :func:`check_held_out`; a served model that is down, not ready or not the
            toolkit's contract (:class:`~sapnet_export.runners.triton_runner.TritonRunner`).
    """
    from .targets import check_stages, open_target

    check_held_out(items, calibration)
    targets = []
    try:
        for url in served:  # first: a server that is down fails before anything is made
            if on_step:
                on_step(url)
            targets.append(open_target(url, weights=info.name, stages=stages))
        targets = make_targets(model, info, reference, formats, workdir, calibration=calibration,
                               stages=stages, gpu=gpu, on_step=on_step) + targets
        check_stages(reference, targets)
        for target in targets:
            if on_made:
                on_made(target)
        return run_verification(reference, info.sha256, targets, items, **verification)
    finally:
        for target in targets:
            if target.runner is not None and not target.is_reference:
                target.runner.close()


def check_held_out(items: Sequence[tuple[Path, Path | None]], calibration: CalibrationSet | None) -> None:
    """Refuse to benchmark on calibration sources
    (:func:`~sapnet_export.measure.evaluation.refuse_calibration_images`).

    Raises:
        InputError: naming the first image that is a calibration source.
    """
    if calibration is not None:
        refuse_calibration_images((path for path, _ in items), calibration.source_sha256, calibration.path)


def log_line(payload: dict) -> str:
    """One JSON line for ``engines/bench.log``: when, machine, data, and per format status, fidelity
    mean, Y-PSNR and p50 latency."""
    return to_json_line({
        "utc": utc_now(), "toolkit": payload["toolkit"],
        "machine": payload["machine"], "data": payload["dataset"]["data"],
        "images": payload["dataset"]["images"],
        "formats": {t["name"]: {"status": t["status"],
                                "fidelity_db": (t["fidelity"] or {}).get("psnr_mean_db"),
                                "psnr_y": (t["quality"] or {}).get("psnr_y"),
                                "p50_ms": (t["latency_ms"] or {}).get("p50")} for t in payload["targets"]},
    })


def append_log(path: Path, payload: dict) -> None:
    """Append :func:`log_line` to ``path`` in one write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(log_line(payload) + "\n")
