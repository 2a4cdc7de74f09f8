"""What machine a measurement was taken on: CPU model, threads, CPU features, GPU (for reports and benchmarks).

:func:`machine_info` identifies a machine (``run --target-fps`` reuses only reports whose identity
matches, :data:`IDENTITY_KEYS`); :func:`cpu_features` says which of the instruction sets that decide
the speed of the int8 and bf16 paths it has, so a report can be read on another machine.
"""

from __future__ import annotations

import functools
import os
import platform

#: Keys of :func:`machine_info` that identify the machine (the rest describes it).
IDENTITY_KEYS = ("cpu", "threads", "gpu")

#: /proc/cpuinfo flags that matter for inference on x86, -> what they give (Intel's and AMD's
#: names as the Linux kernel prints them, arch/x86/include/asm/cpufeatures.h).
CPU_FLAGS = {
    "avx2": "AVX2 (fp32 8-wide FMA)",
    "avx512f": "AVX-512 foundation (fp32 16-wide FMA)",
    "avx512_vnni": "AVX-512 VNNI (int8 dot products, u8 x s8 -> s32)",
    "avx_vnni": "AVX-VNNI (VNNI on 256-bit vectors)",
    "avx512_bf16": "AVX512-BF16 (bf16 dot products)",
    "amx_tile": "AMX tiles",
    "amx_int8": "AMX int8 matrix multiply",
    "amx_bf16": "AMX bf16 matrix multiply",
    "amx_fp16": "AMX fp16 matrix multiply",
}
#: Flags that make bf16 native (not emulated through fp32) on a CPU.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """Every flag of the first ``flags`` line of ``cpuinfo`` (empty where there is none: not Linux,
    not x86)."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def openvino_capabilities() -> tuple[str, ...] | None:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of its CPU device (e.g. ``FP32``, ``BF16``, ``INT8``;
    OpenVINO API reference, ``ov::device::capabilities``); None where OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return tuple(sorted(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")))


def cpu_features() -> dict:
    """``{"flags": [...], "native_bf16": bool, "openvino": [...] | None}``: the :data:`CPU_FLAGS`
    this CPU has (sorted), whether bf16 is native (:data:`BF16_FLAGS`), and OpenVINO's view of the
    CPU (:func:`openvino_capabilities`)."""
    flags = cpu_flags()
    present = sorted(flag for flag in CPU_FLAGS if flag in flags)
    caps = openvino_capabilities()
    return {"flags": present, "native_bf16": any(f in flags for f in BF16_FLAGS),
            "openvino": list(caps) if caps is not None else None}


def machine_info() -> dict:
    """``{"cpu": str, "threads": int, "gpu": str | None, "cpu_features": dict}``: CPU model, logical
    CPUs, the first CUDA GPU (name and compute capability) as PyTorch sees it, and
    :func:`cpu_features`."""
    from sapnet_export.engine.trt_api import current_gpu

    gpu = current_gpu()
    return {"cpu": cpu_name(), "threads": os.cpu_count() or 1,
            "gpu": f"{gpu.name} ({gpu.capability})" if gpu else None, "cpu_features": cpu_features()}


def same_machine(a: dict, b: dict) -> bool:
    """Whether two :func:`machine_info` dicts name the same machine (:data:`IDENTITY_KEYS`)."""
    return all(a.get(key) == b.get(key) for key in IDENTITY_KEYS)


def describe(info: dict) -> str:
    """One line from a :func:`machine_info` dict (this machine's or one a report recorded): CPU model,
    logical CPUs, the int8/bf16 CPU features when recorded, and GPU (or ``no GPU``)."""
    features = info.get("cpu_features")
    flags = "" if not isinstance(features, dict) else " ({})".format(
        ", ".join(f for f in features.get("flags", []) if f not in ("avx2", "avx512f")) or "no VNNI/BF16/AMX")
    return f"{info.get('cpu')}, {info.get('threads')} logical CPUs{flags}, {info.get('gpu') or 'no GPU'}"


def describe_machine() -> str:
    """:func:`describe` of this machine, with its int8/bf16 CPU features."""
    return describe(machine_info())
