"""The TensorRT flavours behind one API: full TensorRT 10/11 (``tensorrt``) and TensorRT-RTX (``tensorrt_rtx``).

Both are imported lazily. What differs between them, and how this module bridges it (docs/design.md sections
3 and 5):

- networks are strongly typed in both (precision lives in the ONNX graph). TensorRT 10 needs the
  ``STRONGLY_TYPED`` creation flag; TensorRT 11 and TensorRT-RTX are strongly typed with flags 0
  (TensorRT-RTX 1.7: ``NetworkDefinitionCreationFlag`` keeps the enum, the behaviour is always on);
- TensorRT-RTX compiles ahead of time for named compute capabilities (``IBuilderConfig.
  set_compute_capability``; SM75, SM80, SM86, SM89, SM120, SM121 in 1.7) and its builder runs without
  a GPU; full TensorRT builds for the GPU it runs on, so it needs one;
- the timing cache is real in full TensorRT and a no-op in TensorRT-RTX (its Python binding warns
  "Timing cache operations are no-ops in TensorRT-RTX", deprecated since 1.2).

Sources: TensorRT Python API (``Builder``, ``IBuilderConfig``, ``OnnxParser``, ``Runtime``), the
TensorRT-RTX 1.7 Python API (``ComputeCapability``, ``IBuilderConfig.set_compute_capability``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from sapnet_export.errors import InputError

#: Builder kinds: the ``--builder`` / sidecar name -> Python module.
MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
#: Human names for messages.
NAMES = {"tensorrt": "TensorRT", "tensorrt-rtx": "TensorRT-RTX"}
#: How to install each kind.
INSTALL = {
    "tensorrt": "install the [tensorrt] extra: pip install 'sapnet-export[tensorrt]' (in a checkout: "
                "pip install -e '.[tensorrt]') --extra-index-url https://pypi.nvidia.com",
    "tensorrt-rtx": "install the [rtx] extra: pip install 'sapnet-export[rtx]' (in a checkout: "
                    "pip install -e '.[rtx]')",
}
#: ``--target`` names TensorRT-RTX can compile for (its ``ComputeCapability`` members, 1.7).
RTX_TARGETS = ("sm75", "sm80", "sm86", "sm89", "sm120", "sm121")


@dataclass(frozen=True)
class Gpu:
    """The CUDA GPU this process sees (device 0), as PyTorch reports it.

    Attributes:
        name: e.g. ``NVIDIA H100 80GB HBM3``.
        capability: compute capability as ``smXY`` (e.g. ``sm90``).
    """

    name: str
    capability: str


def current_gpu() -> Gpu | None:
    """The first CUDA GPU (via ``torch.cuda``), or None on a machine without one (or a CPU torch)."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return Gpu(name=torch.cuda.get_device_name(0), capability=f"sm{major}{minor}")


@dataclass(frozen=True)
class TrtApi:
    """An imported TensorRT flavour.

    Attributes:
        kind: ``tensorrt`` or ``tensorrt-rtx``.
        trt: the module.
        version: its ``__version__`` (e.g. ``1.7.1.116``, ``10.13.0.35``).
    """

    kind: str
    trt: ModuleType
    version: str

    @property
    def name(self) -> str:
        """``TensorRT`` or ``TensorRT-RTX``."""
        return NAMES[self.kind]

    @property
    def major(self) -> int:
        """Major version number."""
        return int(self.version.split(".")[0])

    def network_flags(self) -> int:
        """``create_network`` flags for a strongly typed network in this flavour and version."""
        if self.kind == "tensorrt" and self.major < 11:
            return 1 << int(self.trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        return 0

    @property
    def has_timing_cache(self) -> bool:
        """False for TensorRT-RTX, whose timing cache operations are no-ops."""
        return self.kind == "tensorrt"

    def describe(self) -> str:
        """E.g. ``TensorRT-RTX 1.7.1.116``."""
        return f"{self.name} {self.version}"


def import_trt(kind: str) -> TrtApi:
    """Import the TensorRT flavour ``kind`` (``tensorrt`` or ``tensorrt-rtx``).

    Raises:
        InputError: unknown kind, or the package is not installed (the message says how to install it).
    """
    if kind not in MODULES:
        raise InputError(f"builder {kind!r}: choose one of {', '.join(MODULES)}")
    try:
        module = importlib.import_module(MODULES[kind])
    except ImportError as exc:
        raise InputError(f"{NAMES[kind]} is not installed ({exc}): {INSTALL[kind]}") from exc
    return TrtApi(kind=kind, trt=module, version=str(module.__version__))


def available(kind: str) -> bool:
    """True when ``kind``'s module imports."""
    try:
        import_trt(kind)
    except InputError:
        return False
    return True


def choose_builder(requested: str = "auto", gpu: Gpu | None = None) -> TrtApi:
    """Pick the engine builder.

    ``auto``: full TensorRT when it imports and a GPU is present, otherwise TensorRT-RTX (whose builder
    needs no GPU). An explicit ``tensorrt`` needs a GPU (full TensorRT builds for the GPU it runs on).

    Raises:
        InputError: the requested builder is missing, full TensorRT without a GPU, or no builder at all.
    """
    if requested == "auto":
        if gpu is not None and available("tensorrt"):
            return import_trt("tensorrt")
        if available("tensorrt-rtx"):
            return import_trt("tensorrt-rtx")
        raise InputError("no TensorRT builder is installed: " + INSTALL["tensorrt-rtx"]
                         + " (builds without a GPU), or full TensorRT: " + INSTALL["tensorrt"])
    api = import_trt(requested)
    if api.kind == "tensorrt" and gpu is None:
        raise InputError("full TensorRT builds engines for the GPU it runs on and there is no GPU here "
                         "(torch.cuda.is_available() is False); use --builder tensorrt-rtx with --target")
    return api


def rtx_capability(api: TrtApi, target: str):  # noqa: ANN201 - a trt.ComputeCapability member
    """The ``ComputeCapability`` member for ``smXY`` (``current`` for the GPU present).

    Raises:
        InputError: a target TensorRT-RTX cannot compile for.
    """
    member = getattr(api.trt.ComputeCapability, target.upper(), None)
    if member is None or target.lower() in ("none",):
        raise InputError(f"--target {target}: {api.describe()} compiles for "
                         f"{', '.join(RTX_TARGETS)} (or 'current' with a GPU)")
    return member


def collecting_logger(api: TrtApi):  # noqa: ANN201 - an instance of the flavour's ILogger
    """A TensorRT logger (a subclass of the flavour's ``ILogger``, as ``Builder`` and ``OnnxParser``
    require) that keeps warnings and errors, for error messages and the sidecar.

    The returned object has ``messages`` (list of (severity, text)), ``errors()`` and ``warnings()``.
    """
    base = api.trt.ILogger

    class Collector(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity, msg):  # noqa: ANN001, ANN202 - TensorRT's callback signature
            level = str(severity).rsplit(".", 1)[-1]
            if level in ("INTERNAL_ERROR", "ERROR", "WARNING"):
                self.messages.append((level, msg))

        def errors(self) -> list[str]:
            return [msg for level, msg in self.messages if level != "WARNING"]

        def warnings(self) -> list[str]:
            return [msg for level, msg in self.messages if level == "WARNING"]

    return Collector()
