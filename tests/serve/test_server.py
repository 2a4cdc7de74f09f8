"""``sapnet-export serve`` on a real Triton server (PyTriton's tritonserver) and the ``triton`` backend
against it: one server per module on free 127.0.0.1 ports, stopped by the last test with SIGTERM."""

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import invoke_cli
from sapnet_export.serve.server import free_ports

#: PyTriton publishes manylinux wheels for x86_64 and aarch64 only.
HAS_WHEEL = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")
pytestmark = pytest.mark.skipif(not HAS_WHEEL, reason=f"PyTriton has no wheel for {sys.platform} "
                                f"{platform.machine()}")
#: Bound on the server's start (tritonserver, the stub, the model): seconds.
START_TIMEOUT_S = 180
#: --max-megapixels of the served model: 0.01 MP = 10,000 pixels (24x32 and 64x96 pass, 128x128 not).
MAX_MP = 0.01




def wait_ready(process: subprocess.Popen, grpc_port: int, log: Path) -> None:
    """Poll the model's readiness over gRPC until it is ready; fail on exit or after the bound."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.is_model_ready("sapnet", client_timeout=2.0):
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
    finally:
        client.close()
    process.kill()
    pytest.fail(f"serve not ready after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    """``sapnet-export serve --model fp32.onnx`` in a subprocess (the real CLI): dict of its URLs,
    process and log. Killed at the end if a test has not stopped it."""
    import pytriton  # noqa: F401 - fails loudly where the wheel exists but is not installed

    root = tmp_path_factory.mktemp("serve")
    http, grpc, metrics = free_ports(3)
    log = root / "serve.log"
    command = [sys.executable, "-m", "sapnet_export", "serve", "--model", str(tiny_models["fp32"]),
               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
               "--max-batch", "4", "--batch-delay-us", "2000", "--max-megapixels", str(MAX_MP),
               "--log", str(root / "tritonserver.log")]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    wait_ready(process, grpc, log)
    yield {"grpc": f"grpc://127.0.0.1:{grpc}/sapnet", "http": f"http://127.0.0.1:{http}/sapnet",
           "grpc_address": f"127.0.0.1:{grpc}", "metrics": metrics, "process": process, "log": log,
           "root": root}
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def _frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 3, height, width), dtype=np.float32)


def test_triton_runner_output_identical_to_onnxruntime(server, tiny_models):
    from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner
    from sapnet_export.runners.triton_runner import TritonRunner

    direct = OnnxRuntimeRunner(tiny_models["fp32"])
    for url in (server["grpc"], server["http"]):
        runner = TritonRunner(url)
        assert runner.info.backend == "triton" and runner.info.precision == "fp32" and runner.info.stages == 2
        assert runner.info.versions["tritonserver"] and runner.info.versions["model sapnet"] == "1"
        for shape in ((1, 24, 32), (2, 40, 56), (6, 24, 32)):  # 6 > max batch 4: sent as 4 + 2
            batch = _frames(*shape)
            assert np.array_equal(runner.run(batch), direct.run(batch)), (url, shape)
        runner.close()


def test_verify_and_derain_through_triton(server, tiny_models, tmp_path):
    import json

    code, output = invoke_cli("verify", server["grpc"], tiny_models["fp32"], "--weights",
                              tiny_models["checkpoint"], "--data", tiny_models["data"], "--runs", "2",
                              "--json", tmp_path / "v.json")
    assert code == 0, output
    served, onnx = json.loads((tmp_path / "v.json").read_text())["targets"]
    assert served["backend"] == "triton" and served["status"] == "ok"
    assert served["fidelity"] == onnx["fidelity"]  # the same numbers as the ONNX file itself
    assert served["versions"]["tritonserver"] and served["versions"]["model sapnet"] == "1"
    assert served["latency_ms"]["p50"] > 0
    for backend, model, folder in (("triton", server["grpc"], "t"), ("onnxruntime", tiny_models["fp32"], "o")):
        code, output = invoke_cli("derain", tiny_models["data"], "-o", tmp_path / folder, "--backend",
                                  backend, "--model", model)
        assert code == 0, output
    for png in sorted((tmp_path / "o").glob("*.png")):
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(tmp_path / "t" / png.name)))


def test_bench_row_for_the_served_model(server, tiny_models, tmp_path):
    """``bench --triton URL``: the served model is a row beside the formats, with the fidelity of the
    ONNX file the bench makes from the same weights (the served file is that export too)."""
    import json

    code, output = invoke_cli("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                              "--formats", "onnx", "--triton", server["grpc"], "--runs", "2",
                              "--workdir", tmp_path / "work", "--log", tmp_path / "bench.log",
                              "--json", tmp_path / "b.json")
    assert code == 0, output
    onnx, served = json.loads((tmp_path / "b.json").read_text())["targets"]
    assert onnx["name"] == "onnx" and served["backend"] == "triton" and served["status"] == "ok"
    assert served["fidelity"]["psnr_mean_db"] == pytest.approx(onnx["fidelity"]["psnr_mean_db"], abs=1e-6)
    assert served["versions"]["tritonserver"] and served["latency_ms"]["p50"] > 0
    code, output = invoke_cli("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                              "--formats", "onnx", "--triton", "tcp://127.0.0.1:1/sapnet",
                              "--workdir", tmp_path / "w2", "--log", tmp_path / "b2.log")
    assert code == 2 and "--triton tcp://127.0.0.1:1/sapnet" in output, output
    assert not (tmp_path / "w2").exists() and not (tmp_path / "b2.log").exists()


def test_bad_requests_are_answered_and_the_server_survives(server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server["grpc_address"])
    cases = {"FP32 expected": (np.zeros((1, 3, 8, 8), np.float16), "FP16"),
             "channels": (np.zeros((1, 4, 8, 8), np.float32), "FP32"),
             "rank": (np.zeros((3, 8, 8), np.float32), "FP32"),
             "megapixels": (np.zeros((1, 3, 128, 128), np.float32), "FP32")}
    messages = {}
    for case, (array, datatype) in cases.items():
        rainy = grpcclient.InferInput("rainy", list(array.shape), datatype)
        rainy.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException) as error:
            client.infer("sapnet", [rainy], client_timeout=30)
        messages[case] = str(error.value)
    assert "FP32" in messages["FP32 expected"] and "[-1,3,-1,-1]" in messages["channels"]
    assert "[-1,3,-1,-1]" in messages["rank"] and "--max-megapixels 0.01" in messages["megapixels"]
    good = _frames(1, 24, 32)
    rainy = grpcclient.InferInput("rainy", list(good.shape), "FP32")
    rainy.set_data_from_numpy(good)
    assert client.infer("sapnet", [rainy], client_timeout=30).as_numpy("derained").shape == good.shape
    assert client.is_server_live() and server["process"].poll() is None
    client.close()


def test_health_and_metrics_endpoints(server):
    import urllib.request

    http_port = server["http"].split(":")[2].split("/")[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{server['metrics']}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'nv_inference_request_success{model="sapnet",version="1"}' in text


def test_contract_errors_exit_2(server, tiny_models, tmp_path):
    (port,) = free_ports(1)
    base = server["grpc"].rsplit("/", 1)[0]
    for url, expected in ((f"{base}/nosuch", "'nosuch' is not ready"),
                          (f"grpc://127.0.0.1:{port}/sapnet", "could not reach the server"),
                          (f"http://127.0.0.1:{port}/sapnet", "could not reach the server")):
        code, output = invoke_cli("derain", tiny_models["data"], "-o", tmp_path / "x", "--backend", "triton",
                                  "--model", url)
        assert code == 2 and expected in output, output
        assert not (tmp_path / "x").exists()


def test_port_taken_exits_2_naming_it(server, tiny_models):
    grpc_port = int(server["grpc_address"].split(":")[1])
    http, metrics = free_ports(2)
    code, output = invoke_cli("serve", "--model", tiny_models["fp32"], "--http-port", http, "--grpc-port",
                              grpc_port, "--metrics-port", metrics)
    assert code == 2 and f"port {grpc_port} (--grpc-port)" in output and "taken" in output, output


def test_run_several_sources_through_triton(server, tiny_models, tmp_path):
    """Two streams, one client each: their frames meet in the server's batcher; each output is the
    direct ONNX Runtime Runner's (to a uint8 level: a frame may run in a batch of two)."""
    code, output = invoke_cli("run", tiny_models["data"], tiny_models["data"], "-o", tmp_path / "many",
                              "--backend", "triton", "--model", server["grpc"])
    assert code == 0, output
    code, output = invoke_cli("run", tiny_models["data"], "-o", tmp_path / "alone", "--backend",
                              "onnxruntime", "--model", tiny_models["fp32"])
    assert code == 0, output
    for png in sorted((tmp_path / "alone").glob("*.png")):
        expected = np.asarray(Image.open(png)).astype(int)
        for stream in ("1-data", "2-data"):
            got = np.asarray(Image.open(tmp_path / "many" / stream / png.name)).astype(int)
            assert np.abs(got - expected).max() <= 1, (stream, png.name)


def test_sigterm_lets_in_flight_requests_finish(server, tiny_models):
    """Last in the module: stops the module's server. Requests sent just before SIGTERM, still queued
    or running when it arrives, complete with the output of the direct ONNX Runtime Runner; the
    server exits 0."""
    import tritonclient.grpc as grpcclient

    from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner

    client = grpcclient.InferenceServerClient(server["grpc_address"])
    frames = [_frames(1, 64, 96, seed=s) for s in range(48)]  # seconds of work for the tiny model
    results, finished, done = {}, {}, threading.Event()

    def callback(index, result, error):
        results[index] = error if error is not None else result.as_numpy("derained")
        finished[index] = time.monotonic()
        if len(results) == len(frames):
            done.set()

    for index, frame in enumerate(frames):
        rainy = grpcclient.InferInput("rainy", list(frame.shape), "FP32")
        rainy.set_data_from_numpy(frame)
        client.async_infer("sapnet", [rainy], lambda result, error, i=index: callback(i, result, error), client_timeout=120)
    time.sleep(0.05)  # on the wire; most are still queued or running
    stopped_at = time.monotonic()
    server["process"].send_signal(signal.SIGTERM)
    assert done.wait(120), f"{len(results)} of {len(frames)} answered"
    assert sum(t > stopped_at for t in finished.values()) > 0  # some were in flight at SIGTERM
    direct = OnnxRuntimeRunner(tiny_models["fp32"])
    for index, frame in enumerate(frames):
        assert isinstance(results[index], np.ndarray), results[index]
        assert np.array_equal(results[index], direct.run(frame))
    assert server["process"].wait(timeout=90) == 0, server["log"].read_text()[-2000:]
    assert "stopped;" in server["log"].read_text()
    client.close()
