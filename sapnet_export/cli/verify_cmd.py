"""``sapnet-export verify``: quality parity gates of deployed models against PyTorch fp32, and latency."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import _results as shared
from sapnet_export.data.frame_guard import DEFAULT_MAX_MEGAPIXELS
from . import options as opts
from ._app import ForceBf16Opt, PrecisionOpt, StagesOpt, WeightsOpt, app, console, err_console
from .options import AllowForeignOpt, MaxMegapixelsOpt


@app.command("verify")
@opts.verification_options
def verify_command(
    targets: Annotated[list[str], typer.Argument(
        help="What to verify: ONNX files (any precision), engines (.engine), 'torch', or a served "
        "model: grpc://HOST:PORT/NAME or http://HOST:PORT/NAME (the triton backend).")],
    data: opts.DataOpt,
    gt: opts.GtOpt = None,
    weights: WeightsOpt = "default",
    stages: StagesOpt = None,
    checks: opts.VerificationArgs = opts.VerificationArgs(),
    device: Annotated[Optional[str], typer.Option(
        "--device", help="Device of ONNX targets and the torch target: cpu (default) or cuda; "
        "gpu, npu or auto with --backend openvino.")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", "-b", help="What runs the ONNX targets: onnxruntime (default) or openvino.")] = "onnxruntime",
    precision: PrecisionOpt = None,
    force_bf16: ForceBf16Opt = False,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_MEGAPIXELS,
    allow_foreign_model: AllowForeignOpt = False,
) -> None:
    """Compare each TARGET with PyTorch fp32 on every image (fidelity; quality with --gt), gate it, and
    time it. Exit 0: every gate passed; 1: a gate failed or a target failed; 2: usage or input error."""
    from sapnet_export.errors import CheckFailed
    from sapnet_export.runners.torch_runner import TorchRunner
    from sapnet_export.verify.targets import check_stages, check_weights, open_target
    from sapnet_export.model.checkpoints import load_weights

    shared.check_outputs(checks.json_path, checks.report)
    items, unmatched = shared.discover_with_ground_truth(data, gt, checks.limit)
    shared.guard_sizes(items, checks.sizes, max_megapixels, ["torch", backend])
    model, info = load_weights(weights)
    reference = TorchRunner(model, info, stages=stages, device="cpu")
    opened = [open_target(spec, weights=weights, stages=stages, device=device, onnx_backend=backend,
                          precision=precision, force_bf16=force_bf16,
                          allow_foreign_model=allow_foreign_model) for spec in targets]
    check_stages(reference, opened)
    check_weights(info.sha256, info.name, opened)
    for target in opened:
        if target.foreign_model:
            err_console.print(f"[yellow]warning:[/] {target.name}: {target.foreign_model}")
    console.print(f"reference: torch fp32 on the CPU, {info.name} (sha256 {info.sha256[:12]}), "
                  f"{reference.info.stages} stages; {len(items)} images; targets: "
                  + ", ".join(t.name for t in opened))
    verification = shared.run(reference, info.sha256, opened, items, data=data, gt=gt, checks=checks,
                              unmatched=unmatched)
    shared.finish(verification, f"verify against torch fp32 ({len(items)} images)", checks.json_path,
                  checks.report)
    failed = [t for t in verification.targets if t.status != "ok"]
    if failed:
        raise CheckFailed("; ".join(f"{t.name}: {t.status}: {t.reason}" for t in failed))
    console.print("[green]all gates passed[/]")
