"""The ``triton`` Runner: a model served by Triton Inference Server, over ``tritonclient``.

``--backend triton --model grpc://HOST:PORT/NAME`` (gRPC, the default scheme) or
``http://HOST:PORT/NAME`` (HTTP/REST); ``NAME/VERSION`` picks a version. Before the first frame it
checks, each under :data:`TIMEOUT_S`: the server is live, the model is ready, and its metadata is the
toolkit's contract (input ``rainy`` and output ``derained``, FP32 [-1, 3, -1, -1];
:mod:`sapnet_export.model.triton_contract`). The server's and the model's versions go into
:attr:`RunnerInfo.versions`, so ``verify``/``bench`` reports name what they measured. The toolkit's
metadata in the model configuration's ``parameters`` (``serve`` and ``triton-repo`` write it) gives
the precision the fidelity gate uses. Every call has a deadline: nothing here waits forever.
"""

from __future__ import annotations

import importlib.metadata
from urllib.parse import urlsplit

import numpy as np

from sapnet_export.errors import InputError
from sapnet_export.model.triton_contract import DATATYPE, DIMS, INPUT_NAME, OUTPUT_NAME, PARAM_PREFIX
from .base import Runner, RunnerInfo

#: Seconds allowed for each request (checks and inference) before it is an error.
TIMEOUT_S = 60.0
#: URL schemes and the tritonclient module of each.
SCHEMES = {"grpc": "tritonclient.grpc", "http": "tritonclient.http"}


def is_triton_url(spec: str) -> bool:
    """Whether ``spec`` is a ``grpc://`` or ``http://`` model URL (a ``triton`` target)."""
    return str(spec).startswith(tuple(f"{scheme}://" for scheme in SCHEMES))


def parse_url(url: str) -> tuple[str, str, str, str]:
    """``grpc://HOST:PORT/NAME[/VERSION]`` -> ``(scheme, "HOST:PORT", NAME, VERSION or "")``.

    Raises:
        InputError: another scheme, no port, or no model name.
    """
    usage = "expected grpc://HOST:PORT/NAME or http://HOST:PORT/NAME[/VERSION]"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{url}: {usage} ({exc})") from exc
    path = [p for p in parts.path.split("/") if p]
    if parts.scheme not in SCHEMES or not parts.hostname or not path or len(path) > 2 \
            or parts.query or parts.fragment:
        raise InputError(f"{url}: {usage}")
    if port is None:
        raise InputError(f"{url}: give the port (Triton's defaults: 8001 gRPC, 8000 HTTP)")
    return parts.scheme, f"{parts.hostname}:{port}", path[0], path[1] if len(path) > 1 else ""


def _field(meta, key: str):  # noqa: ANN001, ANN202 - gRPC protobuf or HTTP dict
    return meta[key] if isinstance(meta, dict) else getattr(meta, key)


def check_contract(url: str, metadata) -> None:  # noqa: ANN001 - model metadata (protobuf or dict)
    """InputError unless the model's metadata has exactly input ``rainy`` and output ``derained``,
    FP32 with shape [-1, 3, -1, -1] (dynamic batch, RGB, dynamic size)."""
    expected = [-1, *DIMS]
    for kind, name in (("inputs", INPUT_NAME), ("outputs", OUTPUT_NAME)):
        tensors = list(_field(metadata, kind))
        names = [_field(t, "name") for t in tensors]
        if names != [name]:
            raise InputError(f"{url}: the model's {kind} are {names}, not [{name!r}]: it is not a "
                             "sapnet-export model (serve it with 'sapnet-export serve' or 'triton-repo')")
        tensor = tensors[0]
        shape = [int(d) for d in _field(tensor, "shape")]
        if _field(tensor, "datatype") != DATATYPE or shape != expected:
            raise InputError(f"{url}: {name} is {_field(tensor, 'datatype')} {shape}; the toolkit's "
                             f"contract is {DATATYPE} {expected}")


class TritonRunner(Runner):
    """Derains through a model served by Triton (see the module docstring).

    Args:
        url: ``grpc://HOST:PORT/NAME[/VERSION]`` or ``http://...``.
        timeout_s: deadline of each request, seconds.

    Raises:
        InputError: tritonclient missing, a malformed URL, no server (refused, unreachable, timed
            out), a model that is not ready, or one whose inputs/outputs are not the toolkit's.
    """

    latency_clock = "wall clock around one request (network and server queue included)"

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        scheme, address, self.name, self.version = parse_url(url)
        try:
            self._client_module = importlib.import_module(SCHEMES[scheme])
            from tritonclient.utils import InferenceServerException
        except ImportError as exc:
            raise InputError(f"tritonclient is not installed: pip install 'sapnet-export[serve]' ({exc})") from exc
        self._errors = (InferenceServerException, OSError, ConnectionError)
        self.url, self.scheme, self.timeout_s = url, scheme, timeout_s
        kwargs = ({"connection_timeout": timeout_s, "network_timeout": timeout_s} if scheme == "http" else {})
        self.client = self._client_module.InferenceServerClient(address, **kwargs)
        server = self._call("reach the server", "get_server_metadata")
        if not self._call("ask whether the model is ready", "is_model_ready", self.name, self.version):
            raise InputError(f"{url}: the server answers but model {self.name!r} is not ready (loading, "
                             "failed to load or not in its repository; see the server's log)")
        metadata = self._call("read the model's metadata", "get_model_metadata", self.name, self.version)
        check_contract(url, metadata)
        config = self._call("read the model's configuration", "get_model_config", self.name, self.version)
        config = config.config if scheme == "grpc" else config  # gRPC: ModelConfigResponse; HTTP: the dict
        self.max_batch = int(_field(config, "max_batch_size")) or 1
        params = self._parameters(config)
        versions = list(_field(metadata, "versions"))
        self.info = RunnerInfo(
            backend="triton", precision=params.get("precision", "fp32"),
            device=f"{url} ({params.get('backend', _field(metadata, 'platform'))} on the server)",
            model=url, stages=int(params.get("stages", "0") or 0), threads=None,
            versions={"tritonserver": str(_field(server, "version")),
                      f"model {self.name}": self.version or ",".join(map(str, versions)),
                      "tritonclient": importlib.metadata.version("tritonclient")})

    @staticmethod
    def _parameters(config) -> dict[str, str]:  # noqa: ANN001
        """The toolkit's ``sapnet.*`` parameters of a model configuration (prefix removed)."""
        params = config.get("parameters", {}) if isinstance(config, dict) else config.parameters
        out = {}
        for key, value in dict(params).items():
            if key.startswith(PARAM_PREFIX):
                out[key[len(PARAM_PREFIX):]] = value["string_value"] if isinstance(value, dict) else value.string_value
        return out

    @classmethod
    def from_options(cls, *, model: str | None, weights: str, stages: int | None,
                     device: str | None) -> "TritonRunner":
        """Build from CLI options: ``model`` is the URL; ``device`` must be None; ``stages`` must match
        what the server says it runs."""
        if model is None or not is_triton_url(model):
            raise InputError("the triton backend needs --model grpc://HOST:PORT/NAME (or http://...): "
                             "a model served by 'sapnet-export serve' or a Triton server")
        if device is not None:
            raise InputError(f"--device {device}: the server chooses the device of --backend triton")
        runner = cls(model)
        if stages is not None and runner.info.stages and stages != runner.info.stages:
            raise InputError(f"{model}: the server runs {runner.info.stages} stages, --stages {stages} asked")
        return runner

    def _call(self, what: str, method: str, *args):  # noqa: ANN202 - the client's answer
        kwargs = {"client_timeout": self.timeout_s} if self.scheme == "grpc" else {}
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except self._errors as exc:
            text = str(exc).strip().splitlines()
            reason = next((line for line in reversed(text) if line.strip() and "At:" not in line), str(exc))
            raise InputError(f"{self.url}: could not {what}: {reason[:500]}") from None
        except Exception as exc:  # gevent/geventhttpclient raise their own socket errors  # noqa: BLE001
            raise InputError(f"{self.url}: could not {what}: {type(exc).__name__}: {exc}") from None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, batch.shape[0], self.max_batch):
            chunk = batch[start:start + self.max_batch]
            rainy = self._client_module.InferInput(INPUT_NAME, list(chunk.shape), DATATYPE)
            rainy.set_data_from_numpy(chunk)
            wanted = [self._client_module.InferRequestedOutput(OUTPUT_NAME)]
            result = self._call(f"derain a {list(chunk.shape)} batch", "infer", self.name, [rainy],
                                self.version, wanted)
            outputs.append(np.asarray(result.as_numpy(OUTPUT_NAME), dtype=np.float32))
        return np.concatenate(outputs)

    def close(self) -> None:
        """Close the client's connections (:meth:`Runner.close`)."""
        self.client.close()
