"""What machine a measurement was taken on: CPU model, threads, GPU (for reports and benchmarks)."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else ``platform.processor()``, else ``unknown``."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """``{"cpu": str, "threads": int, "gpu": str | None}``: CPU model, logical CPUs, the first CUDA GPU
    (name and compute capability) as PyTorch sees it."""
    from sapnet_export.engine.trt_api import current_gpu

    gpu = current_gpu()
    return {"cpu": cpu_name(), "threads": os.cpu_count() or 1,
            "gpu": f"{gpu.name} ({gpu.capability})" if gpu else None}


def describe_machine() -> str:
    """One line: CPU model, logical CPUs and GPU (or ``no GPU``)."""
    info = machine_info()
    return f"{info['cpu']}, {info['threads']} logical CPUs, {info['gpu'] or 'no GPU'}"
