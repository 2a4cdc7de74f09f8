"""The ``sapnet-train`` command: train SAPNet, score weights, render synthetic rain, export the bundled
photographs.

Exit codes as ``sapnet-export``: 0 success, 1 a check failed, 2 usage or input error (missing data,
unmatched pair, ImageNet weights unavailable offline, CUDA absent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sapnet_export.cli._app import SapnetGroup, console, err_console
from sapnet_export.errors import InputError
from sapnet_export.cli.options import MaxMegapixelsOpt
from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS, check_images
from sapnet_export.data.images import discover_images
from sapnet_export.fileio import check_output, write_json

app = typer.Typer(cls=SapnetGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Train SAPNet (official recipe) on paired data and/or synthetic rain.")


def _milestones(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--milestones {text!r}: expected comma-separated epochs, e.g. 30,50,80") from None
    if any(v < 1 for v in values) or list(values) != sorted(values):
        raise InputError(f"--milestones {text!r}: epochs must be positive and increasing")
    return values


def _load_training_data(data: list[Path], clean: list[Path]):  # noqa: ANN202 - (pairs, clean, description)
    from .data import load_clean, load_paired_folder

    pairs, photos = [], []
    description = {"paired": [], "clean": []}
    for folder in data:
        loaded = load_paired_folder(folder)
        pairs.extend(loaded)
        description["paired"].append({"folder": str(folder), "images": len(loaded)})
    for folder in clean:
        loaded = load_clean(folder)
        photos.extend(loaded)
        description["clean"].append({"folder": str(folder), "images": len(loaded),
                                     "files": [name for name, _ in loaded]})
    return pairs, photos, description


@app.command()
def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: sapnet.pth, best.pth, "
                                         "state.pt, log.csv.")],
    data: Annotated[list[Path], typer.Option("--data", help="Paired dataset folder (input/ + target/, "
                                             "or rain-N next to norain-N); repeatable.")] = [],
    clean: Annotated[list[Path], typer.Option("--clean", help="Folder of clean photographs; rain is "
                                              "rendered on them on the fly; repeatable.")] = [],
    val: Annotated[Optional[Path], typer.Option("--val", help="Paired validation folder.")] = None,
    val_clean: Annotated[Optional[Path], typer.Option("--val-clean", help="Clean validation photographs "
                                                      "(rain rendered once, seed --seed).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    milestones: Annotated[str, typer.Option(help="MultiStepLR epochs.")] = "30,50,80",
    gamma: Annotated[float, typer.Option(min=0.0)] = 0.2,
    stages: Annotated[int, typer.Option(min=1, max=12)] = 6,
    patch: Annotated[int, typer.Option(min=32)] = 100,
    stride: Annotated[int, typer.Option(min=1)] = 80,
    ssim: Annotated[float, typer.Option("--ssim", min=0.0, help="Weight of -SSIM (0: off).")] = 1.0,
    seg: Annotated[float, typer.Option("--seg", min=0.0, help="Weight of the segmentation loss.")] = 0.1,
    pcl: Annotated[float, typer.Option("--pcl", min=0.0, help="Weight of the perceptual contrastive "
                                       "loss.")] = 0.1,
    lpips: Annotated[float, typer.Option("--lpips", min=0.0, help="Weight of LPIPS.")] = 0.1,
    l1: Annotated[float, typer.Option("--l1", min=0.0, help="Weight of a pixel L1 term (not in the "
                                      "paper; keeps brightness when SSIM is alone).")] = 0.0,
    seg_after_epoch: Annotated[int, typer.Option("--seg-after-epoch", min=0)] = 50,
    no_pretrained: Annotated[bool, typer.Option("--no-pretrained", help="Random (seeded) VGG-16, "
                                                "ResNet-101 and AlexNet for the losses; recorded.")] = False,
    steps_per_epoch: Annotated[Optional[int], typer.Option("--steps-per-epoch", min=1)] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
    workers: Annotated[int, typer.Option(min=0)] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUTPUT.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over in a folder that holds a run.")] = False,
) -> None:
    """Train SAPNet (Adam, MultiStepLR, loss of paper eq. 5) and write checkpoints that
    `sapnet-export --weights` loads."""
    from .data import PatchDataset, load_clean, load_paired_folder, synthetic_pairs
    from .loop import LOG_FILE, TrainConfig, train as run_training
    from .losses import LossWeights

    check_output(output, kind="folder", option="--output")
    if not data and not clean:
        raise InputError("no training data: give --data (paired) and/or --clean (synthetic rain)")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, milestones=_milestones(milestones),
                         gamma=gamma, stages=stages,
                         weights=LossWeights(ssim=ssim, seg=seg, pcl=pcl, lpips=lpips, l1=l1),
                         seg_after_epoch=seg_after_epoch, pretrained=not no_pretrained,
                         steps_per_epoch=steps_per_epoch, seed=seed, workers=workers)
    if not any(config.weights.as_dict().values()):
        raise InputError("every loss weight is 0: nothing to train")
    pairs, photos, description = _load_training_data(data, clean)
    dataset = PatchDataset(pairs, photos, patch=patch, stride=stride, seed=seed)
    description.update(patch=patch, stride=stride, patches=len(dataset), seed=seed)
    validation = None
    if val is not None:
        validation = load_paired_folder(val)
        description["validation"] = {"paired": str(val), "images": len(validation)}
    elif val_clean is not None:
        validation = synthetic_pairs(load_clean(val_clean), seed)
        description["validation"] = {"clean": str(val_clean), "images": len(validation),
                                     "rain_seed": seed}
    if no_pretrained and (seg or pcl or lpips):
        err_console.print("[yellow]warning:[/] --no-pretrained: the perceptual, LPIPS and segmentation "
                          "terms use random (seeded) features, not the paper's ImageNet ones")
    console.print(f"training: {len(dataset)} patches of {patch}x{patch}, batch {batch_size}, "
                  f"{epochs} epochs, loss weights {config.weights.as_dict()}, device {device}")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("epoch", total=None, loss=float("nan"))

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, loss=loss)

        def on_epoch(record) -> None:  # noqa: ANN001 - EpochRecord
            val_text = (f", val Y-PSNR {record.validation['y_psnr_db']:.2f} dB / Y-SSIM "
                        f"{record.validation['y_ssim']:.4f}" if record.validation else "")
            progress.console.print(f"epoch {record.epoch + 1}/{epochs}: lr {record.lr:.3g}, loss "
                                   f"{record.loss:.4f} {_terms(record.terms)}{val_text}, "
                                   f"{record.seconds:.0f} s")
            progress.update(task, description=f"epoch {record.epoch + 2}", completed=0)

        result = run_training(config, dataset, output, validation=validation,
                              data_description=description, device=device, resume=resume,
                              force=force, on_step=on_step, on_epoch=on_epoch)
    console.print(f"done: {result.steps} steps in all, {result.seconds:.0f} s this run; weights "
                  f"{output / 'sapnet.pth'}, log {output / LOG_FILE}")


def _terms(terms: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k} {v:.4f}" for k, v in terms.items()) + ")"


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Paired folder (input/ + target/ or "
                                       "rain-N/norain-N).")],
    weights: Annotated[list[str], typer.Option("--weights", "-w", help="Checkpoint path, 'default' or "
                                               "'official'; repeatable.")] = [],
    stages: Annotated[Optional[int], typer.Option(min=1, max=12, help="Stages to run (at most the "
                                                  "checkpoint's).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the scores as JSON.")] = None,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
) -> None:
    """Y-PSNR/SSIM (and RGB) of the rainy inputs and of each weights' outputs against ground truth."""
    from sapnet_export.model.checkpoints import load_weights

    from .data import load_paired_folder
    from .loop import resolve_device
    from .validation import score_inputs, score_model

    if json_out is not None:
        check_output(json_out, option="--json")
    if data.is_dir():  # header sizes before any image is decoded
        check_images([p for p, _ in discover_images([data])], max_megapixels=max_megapixels,
                     backends=["torch"])
    pairs = load_paired_folder(data)
    torch_device = resolve_device(device)
    rows = [("rainy input", "", score_inputs(pairs))]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        for spec in weights:
            model, info = load_weights(spec)
            try:
                model.resolve_stages(stages)
            except ValueError as exc:
                raise InputError(f"--stages {stages}: {info.path}: {exc}") from None
            task = progress.add_task(spec, total=len(pairs))
            rows.append((spec, info.sha256[:12],
                         score_model(model.to(torch_device), pairs, torch_device, stages,
                                     on_image=lambda: progress.advance(task))))
    table = Table(title=f"{data}: {len(pairs)} images")
    for column in ("output", "checkpoint sha256", "Y-PSNR (dB)", "Y-SSIM", "RGB PSNR (dB)", "RGB SSIM"):
        table.add_column(column, justify="left" if column in ("output", "checkpoint sha256") else "right")
    for name, digest, s in rows:
        table.add_row(name, digest, f"{s.y_psnr_db:.2f}", f"{s.y_ssim:.4f}", f"{s.rgb_psnr_db:.2f}",
                      f"{s.rgb_ssim:.4f}")
    console.print(table)
    if json_out:
        write_json(json_out, {"data": str(data), "images": len(pairs), "stages": stages,
                              "device": str(torch_device),
                              "rows": [{"output": n, "sha256_prefix": d, **s.as_dict()}
                                       for n, d, s in rows]})


@app.command()
def render(
    clean: Annotated[Path, typer.Argument(help="Folder of clean photographs.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Writes OUTPUT/input (rainy) and "
                                         "OUTPUT/target (clean): a paired dataset.")],
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
) -> None:
    """Render synthetic rain once on each photograph (seeded), as a paired dataset to look at or to
    validate on; the parameters of each image go to OUTPUT/rain.json."""
    from sapnet_export.data.images import write_png

    from .data import load_clean
    from .rain import make_rainy

    check_output(output, kind="folder", option="--output")
    record = {"seed": seed, "images": []}
    for i, (name, image) in enumerate(load_clean(clean)):
        rainy, params = make_rainy(image, (seed, i))
        stem = Path(name).with_suffix(".png")
        write_png(output / "input" / stem, rainy)
        write_png(output / "target" / stem, image)
        record["images"].append({"file": str(stem), "seed": [seed, i], "params": params.as_dict()})
    write_json(output / "rain.json", record)
    console.print(f"{len(record['images'])} rainy/clean pairs in {output}")


@app.command()
def qat(
    calib: Annotated[list[Path], typer.Option("--calib", help="Calibration set (`calib build`): ranges "
                                              "and fine-tuning crops, no ground truth needed; "
                                              "repeatable (one frame size).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Fine-tuned checkpoint with its ranges.")],
    weights: Annotated[str, typer.Option("--weights", "-w", help="Checkpoint to start from and distil "
                                         "from: a path, 'default' or 'official'.")] = "default",
    range_calib: Annotated[list[Path], typer.Option("--range-calib", help="Observe the ranges on these "
                                                    "calibration sets instead of --calib (repeatable); "
                                                    "--calib then gives the crops only.")] = [],
    steps: Annotated[int, typer.Option(min=1)] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 4,
    patch: Annotated[int, typer.Option(min=16, help="Crop side in pixels.")] = 128,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam's learning rate (constant).")] = 5e-5,
    stages: Annotated[Optional[int], typer.Option(min=1, max=12, help="Stages to run (default: the "
                                                  "checkpoint's); an export may run fewer.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing OUTPUT.")] = False,
) -> None:
    """Quantization-aware fine-tuning for the tensorrt QDQ profile (training/qat.py); `sapnet-export
    onnx --precision int8 --weights OUTPUT` then quantizes with the learned ranges."""
    from sapnet_export.model.checkpoints import load_weights

    from .loop import resolve_device
    from .qat import QatConfig, load_qat_frames, qat_finetune, save_qat_checkpoint

    check_output(output, force=force, option="--output")
    calibration = load_qat_frames(calib)
    ranges_from = load_qat_frames(range_calib, "--range-calib") if range_calib else None
    model, info = load_weights(weights)
    config = QatConfig(steps=steps, batch_size=batch_size, patch=patch, lr=lr, stages=stages, seed=seed)
    torch_device = resolve_device(device)
    console.print(f"QAT: {info.name} (sha256 {info.sha256[:12]}) as teacher, {steps} steps of "
                  f"{batch_size} crops {patch}x{patch} from {', '.join(map(str, calib))} "
                  f"({calibration.frames.shape[0]} frames), lr {lr:g}, device {torch_device}")
    with Progress(TextColumn("QAT"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("L1 to teacher {task.fields[loss]:.5f}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("qat", total=steps, loss=float("nan"))
        result = qat_finetune(model, calibration.frames, config, torch_device,
                              on_step=lambda step, total, loss: progress.update(task, completed=step,
                                                                                loss=loss),
                              range_frames=ranges_from.frames if ranges_from else None)
    save_qat_checkpoint(result, output, config, info, calibration, torch_device, ranges_from)
    console.print(f"done in {result.seconds:.0f} s: L1 to the teacher {result.loss_start:.5f} "
                  f"(first 10 steps) -> {result.loss_end:.5f} (last 10); "
                  f"{len(result.ranges.ranges)} learned ranges; weights {output}")


@app.command()
def photos(
    output: Annotated[Path, typer.Option("--output", "-o", help="Writes OUTPUT/train, OUTPUT/val and "
                                         "OUTPUT/SOURCES.json.")],
) -> None:
    """Write the clean photographs bundled with scikit-image and matplotlib (no download), split into
    train and val: the data of the toolkit's default weights."""
    from .photos import write_bundled

    check_output(output, kind="folder", option="--output")
    record = write_bundled(output)
    console.print(f"{len(record['photos'])} photographs in {output} (see SOURCES.json)")


def main() -> None:
    """Console-script entry point (``sapnet-train``)."""
    app()
