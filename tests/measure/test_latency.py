import numpy as np
import pytest

from sapnet_export.errors import InputError
from sapnet_export.measure.latency import measure_latency
from sapnet_export.runners.onnxruntime_runner import OnnxRuntimeRunner


def test_runs_and_percentiles(tiny_onnx):
    runner = OnnxRuntimeRunner(tiny_onnx)
    latency = measure_latency(runner, (16, 24), runs=5, warmup=1)
    assert latency.runs == len(latency.samples_ms) == 5 and latency.size == "16x24"
    assert min(latency.samples_ms) <= latency.p50 <= latency.p90 <= latency.p99 <= max(latency.samples_ms)
    assert latency.mean == pytest.approx(np.mean(latency.samples_ms))
    assert latency.frames_per_s == pytest.approx(1000 / latency.mean)
    assert latency.megapixels_per_s == pytest.approx(16 * 24 / 1e6 * latency.frames_per_s)
    assert "perf_counter" in latency.clock
    assert set(latency.to_json()) >= {"p50", "p90", "p99", "mean", "runs", "size"}


def test_duration_mode_and_bad_options(tiny_onnx):
    runner = OnnxRuntimeRunner(tiny_onnx)
    assert measure_latency(runner, (16, 16), warmup=0, duration_s=0.05).runs >= 1
    with pytest.raises(InputError, match="need runs >= 1"):
        measure_latency(runner, (16, 16), runs=0)
