"""Throughput and latency of `sapnet-export serve` for 1, 2, 4, 8 concurrent streams, with and without
dynamic batching (issue 19; docs/serving.md, table in docs/measurements.md).

Both servers (no batching, dynamic batching) run at once and the rounds alternate between them.
Each stream is one gRPC client sending its frames one after another (a camera waiting for each
result); latency is the wall clock of one request, throughput is all streams' frames over the wall
clock of the round. The server runs in a subprocess on free 127.0.0.1 ports; its Prometheus metrics
give the mean frames per model execution (nv_inference_count / nv_inference_exec_count). Bounded:
--frames per stream, a start timeout, SIGTERM at the end. Run under nice on a shared machine.

    nice -n 10 timeout 900 python benchmarks/serve_throughput.py --size 64x96 --frames 8
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from sapnet_export.serve.server import free_ports

CONFIGS = {"no batching (--max-batch 1)": ["--max-batch", "1"],
           "dynamic batching (--max-batch 8 --batch-delay-us 2000)": ["--max-batch", "8", "--batch-delay-us", "2000"]}




def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf'^{name}{{model="sapnet",version="1"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else float("nan")


def start(model: Path, extra: list[str], log: Path):  # noqa: ANN201 - (process, grpc port, metrics port)
    import tritonclient.grpc as grpcclient

    http, grpc, metrics = free_ports(3)
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "sapnet_export", "serve", "--model", str(model),
                                "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port",
                                str(metrics), *extra], stdout=out, stderr=subprocess.STDOUT)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if client.is_model_ready("sapnet", client_timeout=2):
                client.close()
                return process, grpc, metrics
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"serve did not become ready; log {log}:\n{log.read_text()[-2000:]}")


def stream(grpc: int, frame: np.ndarray, frames: int, latencies: list[float]) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
    rainy = grpcclient.InferInput("rainy", list(frame.shape), "FP32")
    rainy.set_data_from_numpy(frame)
    for _ in range(frames):
        begin = time.perf_counter()
        client.infer("sapnet", [rainy], client_timeout=120)
        latencies.append(time.perf_counter() - begin)
    client.close()


def round_(grpc: int, metrics: int, streams: int, frame: np.ndarray, frames: int) -> dict:
    before = (metric(metrics, "nv_inference_count"), metric(metrics, "nv_inference_exec_count"))
    latencies = [[] for _ in range(streams)]
    threads = [threading.Thread(target=stream, args=(grpc, frame, frames, latencies[i])) for i in range(streams)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - begin
    count = metric(metrics, "nv_inference_count") - before[0]
    executions = metric(metrics, "nv_inference_exec_count") - before[1]
    p50 = [np.percentile(lat, 50) * 1e3 for lat in latencies]
    p99 = [np.percentile(lat, 99) * 1e3 for lat in latencies]
    return {"streams": streams, "fps": streams * frames / wall, "p50_median_ms": float(np.median(p50)),
            "p99_worst_ms": float(max(p99)), "frames_per_execution": count / executions if executions else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX file (default: the toolkit's default weights, exported)")
    parser.add_argument("--size", default="64x96", help="frame HxW")
    parser.add_argument("--frames", type=int, default=8, help="frames per stream per round")
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per stream count and configuration")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    model = args.model
    if model is None:
        model = work / "sapnet.onnx"
        subprocess.run([sys.executable, "-m", "sapnet_export", "onnx", "--weights", "default", "-o", str(model)],
                       check=True, stdout=subprocess.DEVNULL)
    frame = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    print(f"uptime before: {os.popen('uptime').read().strip()}", flush=True)
    servers = {}
    try:
        for index, (label, extra) in enumerate(CONFIGS.items()):
            servers[label] = start(model, extra, work / f"serve{index}.log")
            round_(*servers[label][1:], 1, frame, 2)  # warm-up
        rows = []
        # Interleaved: each stream count runs against both servers in turn, twice, so the load of
        # this shared machine hits both configurations alike.
        for streams in (int(s) for s in args.streams.split(",")):
            for repeat in range(args.repeats):
                for label, (_, grpc, metrics) in servers.items():
                    row = {"config": label, "repeat": repeat + 1, **round_(grpc, metrics, streams, frame, args.frames)}
                    rows.append(row)
                    print(f"{label} #{repeat + 1}: {streams} streams: {row['fps']:.2f} frames/s, p50 "
                          f"{row['p50_median_ms']:.0f} ms, p99 {row['p99_worst_ms']:.0f} ms, "
                          f"{row['frames_per_execution']:.2f} frames/execution", flush=True)
    finally:
        for process, _, _ in servers.values():
            process.send_signal(signal.SIGTERM)
        for process, _, _ in servers.values():
            process.wait(timeout=120)
    print(f"uptime after: {os.popen('uptime').read().strip()}", flush=True)
    print("\n| configuration | streams | round | frames/s (all streams) | latency p50 (ms, median of streams) | "
          "latency p99 (ms, worst stream) | frames per model execution |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['streams']} | {r['repeat']} | {r['fps']:.2f} | {r['p50_median_ms']:.0f} | "
              f"{r['p99_worst_ms']:.0f} | {r['frames_per_execution']:.2f} |")


if __name__ == "__main__":
    main()
