import http.server
import shutil
import threading
from functools import partial

import pytest
import torch

from sapnet_export.errors import WeightsError
from sapnet_export.model.network import SAPNet
from sapnet_export.model.checkpoints import (
    OFFICIAL_SHA256, load_weights, official_cache_path, resolve_official, save_checkpoint,
    state_dict_sha256)


def six_stage_model() -> SAPNet:
    torch.manual_seed(1)
    return SAPNet()


def test_strict_load_of_the_published_checkpoint(official_checkpoint):
    model, info = load_weights(official_checkpoint)
    assert info.layout == "dataparallel" and info.sha256 == OFFICIAL_SHA256
    assert info.source == "path" and info.stages == 6 and not model.training


def test_official_from_environment_variable(official_checkpoint, monkeypatch):
    monkeypatch.setenv("SAPNET_WEIGHTS", str(official_checkpoint))
    _, info = load_weights("official")
    assert info.source == "$SAPNET_WEIGHTS" and info.path == official_checkpoint


def test_official_from_torch_hub_cache(seeded_official_cache):
    _, info = load_weights("official")
    assert info.source == "torch-hub-cache" and info.path == seeded_official_cache


def test_official_download_goes_to_the_cache(official_checkpoint, tmp_path, monkeypatch):
    """A real HTTP download from a loopback server, verified and kept in the torch hub cache."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(official_checkpoint, served / "net_latest.pth")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SAPNET_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}/net_latest.pth")
        path, digest, source = resolve_official()
    finally:
        server.shutdown()
    assert source == "download" and digest == OFFICIAL_SHA256 and path == official_cache_path()
    assert list(path.parent.glob("*.tmp")) == []


def test_official_offline_without_cache_says_how_to_supply_it():
    with pytest.raises(WeightsError) as info:
        load_weights("official")
    message = str(info.value)
    assert "cannot download" in message and "SAPNET_WEIGHTS" in message
    assert str(official_cache_path()) in message and "--weights" in message
    assert not official_cache_path().exists()


def test_official_with_wrong_bytes_is_refused(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("SAPNET_WEIGHTS", str(tiny_checkpoint))
    with pytest.raises(WeightsError, match="is not the published SAPNet checkpoint"):
        load_weights("official")


def test_plain_state_dict_and_dataparallel_layouts(tiny_model, tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(six_stage_model().state_dict(), plain)
    _, info = load_weights(plain)
    assert info.layout == "state_dict" and info.stages == 6
    wrapped = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in six_stage_model().state_dict().items()}, wrapped)
    assert load_weights(wrapped)[1].layout == "dataparallel"


def test_project_format_round_trip(tiny_model, tiny_checkpoint):
    model, info = load_weights(tiny_checkpoint)
    assert info.layout == "sapnet-export" and info.stages == 2
    assert info.metadata["provenance"] == {"made_by": "tests"}
    assert info.metadata["sha256"] == state_dict_sha256(tiny_model.state_dict())
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), tiny_model(x), rtol=0, atol=0)


def test_project_format_with_damaged_state_is_refused(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "c.pth")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["conv.0.bias"] += 1
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="does not match the sha256"):
        load_weights(path)


def test_wrong_keys_are_listed(tmp_path):
    state = six_stage_model().state_dict()
    state.pop("conv_i.0.weight")
    state["extra.weight"] = torch.zeros(1)
    state["conv.0.bias"] = torch.zeros(4)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert str(path) in message
    assert "missing keys: conv_i.0.weight" in message
    assert "unexpected keys: extra.weight" in message
    assert "conv.0.bias (4,) (expected (3,))" in message


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\x89PNG\r\n\x1a\n0000"])
def test_unreadable_file_is_named(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="bad.pth: not a readable PyTorch checkpoint"):
        load_weights(path)


def test_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="not a SAPNet checkpoint"):
        load_weights(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="checkpoint file not found"):
        load_weights(tmp_path / "nope.pth")


def test_state_dict_sha256_depends_on_values():
    state = six_stage_model().state_dict()
    before = state_dict_sha256(state)
    state["conv.0.bias"] = state["conv.0.bias"] + 1e-6
    assert state_dict_sha256(state) != before


def test_default_weights_ship_in_the_package_and_record_how_they_were_trained():
    from sapnet_export.model.checkpoints import DEFAULT_WEIGHTS

    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    model, info = load_weights()  # 'default' is the default
    assert info.name == "default" and info.source == "package" and info.layout == "sapnet-export"
    assert model.stages == 6 and model.dilations == (1, 2, 4, 8, 16)
    meta = info.metadata["training"]
    assert meta["command"].startswith("sapnet-train train")
    for key in ("recipe", "data", "steps", "device", "seconds", "validation", "epochs_done"):
        assert meta[key], key
    assert meta["steps"] >= 800 and meta["data"]["clean"] and meta["recipe"]["weights"]["l1"] > 0
    assert "Rain100" not in str(meta["data"])  # not trained on the test set's backgrounds


@pytest.mark.real
def test_default_weights_derain_rain100l_better_than_doing_nothing():
    from conftest import need_shared
    from sapnet_export.data.images import evenly_spaced
    from training.data import load_paired_folder
    from training.validation import score_inputs, score_model

    # 8 images spread over the set: its first ones have the lightest rain, where the default
    # weights lose Y-PSNR (they gain it on the set as a whole: training/README.md).
    pairs = evenly_spaced(load_paired_folder(need_shared("data/rain100l")), 8)
    model, _ = load_weights("default")
    derained, rainy = score_model(model, pairs), score_inputs(pairs)
    assert derained.y_psnr_db > rainy.y_psnr_db + 1.0 and derained.y_ssim > rainy.y_ssim + 0.03
