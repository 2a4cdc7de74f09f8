"""Shared fixtures: the real checkpoint and images from ../shared (skipped when absent), a tiny model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sapnet_export.model.network import SAPNet
from sapnet_export.model.checkpoints import OFFICIAL_CACHE_NAME, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$SAPNET_SHARED`` or ``../shared`` beside the project."""
    return Path(os.environ.get("SAPNET_SHARED", ROOT.parent / "shared"))


def need_shared(relative: str) -> Path:
    """Path of ``relative`` under the shared folder, or skip the test saying what is missing."""
    path = shared_dir() / relative
    if not path.exists():
        pytest.skip(f"{path} is missing: real weights and images come from ../shared or $SAPNET_SHARED")
    return path


@pytest.fixture(autouse=True)
def isolated_weights(tmp_path_factory, monkeypatch):
    """No test sees the user's $SAPNET_WEIGHTS or torch hub cache, or reaches the internet for weights.

    TORCH_HOME points at an empty folder and the download address at a closed loopback port, so
    'official' resolves only where a test puts the file.
    """
    monkeypatch.delenv("SAPNET_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    monkeypatch.setenv("SAPNET_WEIGHTS_URL", "http://127.0.0.1:9/net_latest.pth")


@pytest.fixture(autouse=True)
def isolated_openvino_cache(tmp_path_factory, monkeypatch):
    """OpenVINO's compiled-model cache (CACHE_DIR) goes to a folder of this test session, not ~/.cache."""
    monkeypatch.setenv("SAPNET_OPENVINO_CACHE", str(tmp_path_factory.getbasetemp() / "openvino_cache"))


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Rich wraps at the terminal width (80 when not a terminal); 200 columns keep messages on one line."""
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def official_checkpoint() -> Path:
    """The published checkpoint in ../shared/weights (skips when absent)."""
    return need_shared("weights/sapnet_official_model11.pth")


@pytest.fixture
def seeded_official_cache(official_checkpoint) -> Path:
    """Copy the published checkpoint into this test's torch hub cache, where 'official' finds it."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_CACHE_NAME
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(official_checkpoint, cache)
    return cache


@pytest.fixture
def tiny_model() -> SAPNet:
    """A 2-stage SAPNet with seeded random weights (fast; same graph as the real one)."""
    torch.manual_seed(0)
    return SAPNet(stages=2).eval()


@pytest.fixture
def tiny_checkpoint(tiny_model, tmp_path) -> Path:
    """``tiny_model`` saved in the project's checkpoint format."""
    return save_checkpoint(tiny_model, tmp_path / "tiny.pth", provenance={"made_by": "tests"})


def write_rgb(path: Path, height: int = 24, width: int = 32, seed: int = 0) -> Path:
    """Write a random 8-bit RGB image (format from the suffix) and return its path."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_rgb_folder(folder: Path, count: int, height: int = 24, width: int = 32, prefix: str = "") -> Path:
    """Create ``folder`` with ``count`` random RGB PNGs ``<prefix><seed>.png`` (seeds 0..count-1)."""
    folder.mkdir(parents=True)
    for seed in range(count):
        write_rgb(folder / f"{prefix}{seed}.png", height, width, seed=seed)
    return folder


def invoke_cli(*args) -> tuple[int, str]:
    """Run ``sapnet-export ARGS`` in-process; return (exit code, stdout and stderr)."""
    from typer.testing import CliRunner

    from sapnet_export.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def invoke_train_cli(*args) -> tuple[int, str]:
    """Run ``sapnet-train ARGS`` in-process; return (exit code, stdout and stderr)."""
    from typer.testing import CliRunner

    from training.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def tiny_onnx(tiny_checkpoint, tmp_path) -> Path:
    """``tiny_checkpoint`` exported to fp32 ONNX with the ``onnx`` command."""
    code, output = invoke_cli("onnx", "--weights", tiny_checkpoint, "-o", tmp_path / "t.onnx")
    assert code == 0, output
    return tmp_path / "t.onnx"


@pytest.fixture
def tiny_calibration(tmp_path) -> Path:
    """A calibration set of 4 random 24x32 frames built from 4 image files."""
    from sapnet_export.export.int8.calibration import build_calibration

    sources = tmp_path / "calib_src"
    sources.mkdir()
    for seed in range(4):
        write_rgb(sources / f"c{seed}.png", 24, 32, seed=100 + seed)
    build_calibration([str(sources)], tmp_path / "calib", size=(24, 32), count=4, seed=0)
    return tmp_path / "calib"


def parse_in_tensorrt_rtx(path: Path):
    """Parse an ONNX file with TensorRT-RTX's ONNX parser (no GPU needed); skip if it is not installed.

    Returns (parsed ok, parser error messages, the network definition).
    """
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT-RTX networks are always strongly typed
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(path))
    errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
    return ok, errors, network


#: Optimization profile of the tiny engines: small, so the builds stay fast.
TINY_PROFILE = "1x3x16x16:1x3x24x32:1x3x64x64"


@pytest.fixture(scope="session")
def tiny_engines(tmp_path_factory) -> dict[str, Path]:
    """fp32, fp16 and int8 (tensorrt QDQ) engines of a 2-stage random-weight SAPNet, built once per
    session by TensorRT-RTX for sm89 with :data:`TINY_PROFILE`; keys ``fp32``, ``fp16``, ``int8`` and
    ``checkpoint``, ``calibration``, ``<precision>_onnx``. Skips when TensorRT-RTX is not installed."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu13) is not installed")
    from sapnet_export.export.int8.calibration import build_calibration, load_calibration
    from sapnet_export.engine.build import BuildOptions, build_engine
    from sapnet_export.export.onnx_export import Int8Options, export_onnx
    from sapnet_export.engine.sidecar import parse_profile
    from sapnet_export.model.checkpoints import load_weights

    root = tmp_path_factory.mktemp("tiny_engines")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(SAPNet(stages=2).eval(), root / "tiny.pth")
    sources = root / "calib_src"
    sources.mkdir()
    for seed in range(4):
        write_rgb(sources / f"c{seed}.png", 24, 32, seed=100 + seed)
    held_out = write_rgb(root / "held.png", 24, 32, seed=7)
    build_calibration([str(sources)], root / "calib", size=(24, 32), count=4, seed=0)
    model, info = load_weights(checkpoint)
    files = {"checkpoint": checkpoint, "calibration": root / "calib"}
    for precision in ("fp32", "fp16", "int8"):
        int8 = (Int8Options(calibration=load_calibration(root / "calib"))
                if precision == "int8" else None)
        onnx_path = export_onnx(model, info, root / f"{precision}.onnx", precision=precision,
                                images=[held_out], int8=int8, command="tests").path
        options = BuildOptions(builder="tensorrt-rtx", profile=parse_profile(TINY_PROFILE), targets=("sm89",))
        files[f"{precision}_onnx"] = onnx_path
        files[precision] = build_engine(onnx_path, root / f"{precision}.engine", options,
                                        command="tests").path
    return files


def damage_int8_scale(source: Path, target: Path, factor: float = 100.0) -> str:
    """Copy a QDQ graph with one scale multiplied by ``factor``: the weight scale of the last quantized
    Conv outside the attention paths (the last residual block's, in the last stage: the tensorrt
    profile keeps the output conv float), a deliberately damaged model for the verify gates. Returns
    the scale's initializer name."""
    import onnx
    from onnx import numpy_helper

    from sapnet_export.export.int8.groups import attention_nodes

    model = onnx.load(str(source))
    producer = {out: node for node in model.graph.node for out in node.output}
    attention = set(attention_nodes(model))  # 1x1 convs whose error the Sigmoid squashes
    last_conv = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in producer
                 and n.name not in attention][-1]
    dequantize = producer[last_conv.input[1]]
    scale = next(i for i in model.graph.initializer if i.name == dequantize.input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(factor), scale.name))
    onnx.save(model, str(target))
    return scale.name


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A 2-stage random-weight checkpoint with its fp32 and int8 (tensorrt QDQ, calibrated on 4 random
    frames) ONNX exports, a damaged copy of the int8 one (one scale x 100), and a data folder of 3 rainy
    24x32 images with a ground-truth folder (Rain100L-style names: rain-N / norain-N)."""
    from sapnet_export.export.int8.calibration import build_calibration, load_calibration
    from sapnet_export.export.onnx_export import Int8Options, export_onnx
    from sapnet_export.model.checkpoints import load_weights

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(SAPNet(stages=2).eval(), root / "tiny.pth")
    (root / "calib_src").mkdir()
    for seed in range(4):
        write_rgb(root / "calib_src" / f"c{seed}.png", 24, 32, seed=100 + seed)
    build_calibration([str(root / "calib_src")], root / "calib", size=(24, 32), count=4, seed=0)
    for folder in ("data", "gt"):
        (root / folder).mkdir()
    for n in range(1, 4):
        write_rgb(root / "data" / f"rain-{n}.png", 24, 32, seed=n)
        write_rgb(root / "gt" / f"norain-{n}.png", 24, 32, seed=50 + n)
    model, info = load_weights(checkpoint)
    files = {"checkpoint": checkpoint, "calibration": root / "calib", "data": root / "data", "gt": root / "gt"}
    files["fp32"] = export_onnx(model, info, root / "fp32.onnx", command="tests").path
    files["int8"] = export_onnx(model, info, root / "int8.onnx", precision="int8", command="tests",
                                int8=Int8Options(load_calibration(root / "calib")),
                                require_held_out=False).path
    damage_int8_scale(files["int8"], root / "damaged.onnx")
    files["damaged"] = root / "damaged.onnx"
    return files


@pytest.fixture(scope="session")
def tiny_configs(tiny_models, tmp_path_factory) -> Path:
    """Real bench reports of the tiny 2-stage checkpoint at 1 and 2 stages (torch and ONNX fp32), timed
    at 24x32: one ``bench --stages 1-2`` writing ``k1.json`` and ``k2.json`` into one folder."""
    root = tmp_path_factory.mktemp("configs")
    code, output = invoke_cli("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                              "--gt", tiny_models["gt"], "--stages", "1-2", "--formats", "torch,onnx",
                              "--workdir", root / "work", "--log", root / "bench.log", "--json", root,
                              "--runs", "2", "--sizes", "24x32")
    assert code == 0, output
    return root


def write_grey_video(path, frames=6, height=32, width=48):
    """A short MPEG-4 video whose frame k is a flat grey of level 20 * k (decodable, lossy)."""
    import imageio.v3 as iio

    data = np.stack([np.full((height, width, 3), 20 * k, dtype=np.uint8) for k in range(frames)])
    iio.imwrite(path, data, plugin="pyav", codec="mpeg4", fps=5)
    return path


def block_frames(count=4, height=21, width=35):
    """Frames of 4x4 colour blocks (what H.264's 4:2:0 chroma keeps), shifted one pixel per frame."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (height // 4 + 1, (width + count) // 4 + 1, 3), dtype=np.uint8)
    base = np.kron(blocks, np.ones((4, 4, 1), np.uint8))
    return [np.ascontiguousarray(base[:height, i:i + width]) for i in range(count)]


def write_frames_video(path, frames, fps=10.0):
    """Write uint8 HxWx3 ``frames`` to ``path`` through the toolkit's own VideoSink."""
    from sapnet_export.data.sinks import VideoSink

    sink = VideoSink(path, fps)
    for i, frame in enumerate(frames):
        sink.write(i, frame)
    sink.close()
    return path


# --- hostile-input suite (tests/reliability/) ---

@pytest.fixture
def unwritable_dir(tmp_path) -> Path:
    """A folder where no file can be created: chmod 0o500, or (as root, who ignores modes) a path
    under /sys, whose sysfs refuses new files to everyone."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / ".probe").touch()
    except OSError:
        yield folder
        folder.chmod(0o700)
        return
    (folder / ".probe").unlink()
    folder.chmod(0o700)
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without a read-only /sys: no unwritable folder to test with")
    yield Path("/sys/kernel")


def leftovers(folder: Path) -> list[str]:
    """Names of temporaries (``*.tmp``) anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp"))


def assert_clean_error(code: int, output: str, expected_code: int, *needles: str) -> None:
    """Exit code, each needle in the message, and no traceback."""
    assert code == expected_code, output
    assert "Traceback" not in output, output
    for needle in needles:
        assert str(needle) in output, f"{needle!r} not in: {output}"

