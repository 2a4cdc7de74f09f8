"""``sapnet-export serve``: a real Triton Inference Server on this machine, through PyTriton.

PyTriton (``nvidia-pytriton``) starts the ``tritonserver`` binary its wheel carries and binds Python
callables as models through the Python backend (PyTriton docs, "Binding models"). Here the callable is
:class:`~sapnet_export.serve.model.ServedModel` over a toolkit Runner: Triton's dynamic batcher
gathers requests (``max_batch_size``, ``max_queue_delay_microseconds``), ``instances`` callables are
Triton model instances, Triton serves health (``/v2/health/live``, ``/v2/health/ready``), gRPC and
HTTP/REST (KServe v2 protocol) and Prometheus metrics (``/metrics``). Stopping sends SIGINT to
``tritonserver`` first, which refuses new requests and lets in-flight ones finish (Triton's
``--exit-timeout-secs``) before PyTriton shuts its proxies down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sapnet_export.errors import InputError
from sapnet_export.run.derain import DEFAULT_MAX_MEGAPIXELS
from sapnet_export.runners.base import Runner
from sapnet_export.model.triton_contract import DEFAULT_NAME, DIMS, INPUT_NAME, OUTPUT_NAME, metadata_parameters
from .model import ServedModel
from .stub_env import ensure_stub_env, libpython_env

#: Seconds Triton waits for in-flight requests when stopping (``--exit-timeout-secs``).
EXIT_TIMEOUT_S = 30


@dataclass(frozen=True)
class ServeOptions:
    """How to serve (the ``serve`` command's options).

    Attributes:
        name: Triton model name.
        host: address the three endpoints listen on (``127.0.0.1``; ``0.0.0.0`` for every interface).
        http_port, grpc_port, metrics_port: TCP ports (Triton's defaults 8000, 8001, 8002).
        max_batch: ``max_batch_size``, frames per model call; 1 turns dynamic batching off.
        batch_delay_us: ``max_queue_delay_microseconds``: how long the batcher may hold a request
            to fill a batch (0: batch only what is already queued).
        instances: model instances (each its own Runner, run in parallel).
        max_megapixels: larger frames are answered with an error.
        tile, overlap: frames beyond ``tile`` (H, W) run as overlapping tiles.
        log_file: tritonserver's log (None: a temporary file, named when the server fails).
    """

    name: str = DEFAULT_NAME
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 4
    batch_delay_us: int = 0
    instances: int = 1
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    tile: tuple[int, int] | None = None
    overlap: int = 0
    log_file: Path | None = None

    def ports(self) -> dict[str, int]:
        """``{"--http-port": 8000, ...}``."""
        return {"--http-port": self.http_port, "--grpc-port": self.grpc_port,
                "--metrics-port": self.metrics_port}


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` now (bound to port 0 together, then released;
    another process may take one before it is used). For tests and benchmarks."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def check_ports(options: ServeOptions) -> None:
    """Raise InputError naming the option and port when a port is taken (or two options share one)
    on ``options.host``: binding is tried, as the server will."""
    ports = options.ports()
    if len(set(ports.values())) != len(ports):
        raise InputError(f"{', '.join(f'{k} {v}' for k, v in ports.items())}: the three ports must differ")
    for option, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((options.host, port))
            except OSError as exc:
                raise InputError(f"port {port} ({option}) on {options.host} is taken ({exc.strerror}); "
                                 f"stop what listens there or pass another {option}") from exc


@contextlib.contextmanager
def _stub_parameters(parameters: dict[str, str]) -> Iterator[None]:
    """Add ``parameters`` to the model configuration PyTriton writes (its public ModelConfig has no
    ``parameters``; its internal TritonModelConfig has ``backend_parameters``, which become the
    config's ``parameters``). Used for ``EXECUTION_ENV_PATH`` (serve/stub_env.py) and the toolkit's
    metadata."""
    from pytriton.models import model as pytriton_model

    original = pytriton_model.Model._get_triton_model_config

    def with_parameters(self):  # noqa: ANN001, ANN202 - PyTriton's method
        config = original(self)
        config.backend_parameters.update(parameters)
        return config

    pytriton_model.Model._get_triton_model_config = with_parameters
    try:
        yield
    finally:
        pytriton_model.Model._get_triton_model_config = original


def import_pytriton():  # noqa: ANN201 - the pytriton.triton module
    """Import PyTriton, or raise InputError saying how to install it."""
    try:
        import pytriton.triton
    except ImportError as exc:
        raise InputError("PyTriton is not installed (the server of `serve`): pip install -c "
                         "constraints.txt --no-deps nvidia-pytriton, then pip install "
                         f"'sapnet-export[serve]' ({exc})") from exc
    return pytriton.triton


@dataclass
class Served:
    """A running server: its ``models`` (one :class:`ServedModel` per instance), the ``url``s of
    its endpoints and the tritonserver ``log_file``."""

    models: list[ServedModel]
    urls: dict[str, str]
    log_file: Path


def serve(make_runner: Callable[[], Runner], options: ServeOptions, stop: threading.Event,
          on_ready: Callable[[Served], None] | None = None) -> Served:
    """Serve until ``stop`` is set, then stop gracefully (in-flight requests finish) and return.

    Args:
        make_runner: builds one Runner; called ``options.instances`` times before the server starts.
        options: see :class:`ServeOptions`.
        stop: set it (e.g. from a SIGINT/SIGTERM handler) to stop the server.
        on_ready: called once the model is ready (the server answers ``/v2/health/ready``).

    Raises:
        InputError: PyTriton missing, a port taken, no shared libpython, the stub environment cannot
            be built, or the server failed to start (the message names its log).
    """
    triton = import_pytriton()
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    check_ports(options)
    models = [ServedModel(make_runner(), options.max_megapixels, options.tile, options.overlap)
              for _ in range(options.instances)]
    os.environ.update(libpython_env())  # PyTriton hands os.environ to tritonserver
    stub = ensure_stub_env(log=lambda line: logging.getLogger(__name__).warning(line))
    log_file = options.log_file or Path(tempfile.mkdtemp(prefix="sapnet-serve-")) / "tritonserver.log"
    config = triton.TritonConfig(
        http_address=options.host, http_port=options.http_port, grpc_address=options.host,
        grpc_port=options.grpc_port, metrics_address=options.host, metrics_port=options.metrics_port,
        exit_timeout_secs=EXIT_TIMEOUT_S, log_file=log_file, log_verbose=0, allow_gpu_metrics=False)
    parameters = {"EXECUTION_ENV_PATH": str(stub), **metadata_parameters(models[0].runner.info)}
    for name in ("pytriton", "sh"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with _stub_parameters(parameters), triton.Triton(config=config) as server:
            server.bind(model_name=options.name, infer_func=models,
                        inputs=[Tensor(name=INPUT_NAME, dtype=np.float32, shape=DIMS)],
                        outputs=[Tensor(name=OUTPUT_NAME, dtype=np.float32, shape=DIMS)],
                        config=ModelConfig(max_batch_size=options.max_batch, batcher=DynamicBatcher(
                            max_queue_delay_microseconds=options.batch_delay_us)), strict=False)
            server.run()
            served = Served(models, {"grpc": f"grpc://{options.host}:{options.grpc_port}/{options.name}",
                                     "http": f"http://{options.host}:{options.http_port}/{options.name}",
                                     "metrics": f"http://{options.host}:{options.metrics_port}/metrics"},
                            log_file)
            if on_ready:
                on_ready(served)
            while not stop.wait(0.2):
                if not server.is_alive():
                    raise InputError(f"the Triton server stopped by itself; its log: {log_file}")
    except Exception as exc:  # PyTriton's errors (startup timeout, server exit) carry no log path
        if isinstance(exc, InputError):
            raise
        raise InputError(f"the Triton server failed: {type(exc).__name__}: {exc}; its log: {log_file}") from exc
    return served
