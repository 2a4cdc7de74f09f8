import json

from conftest import invoke_cli as invoke, write_rgb


def test_sensitivity_ranks_groups_and_writes_json(tiny_checkpoint, tiny_calibration, tmp_path):
    held = tmp_path / "held"
    held.mkdir()
    for seed in range(3):
        write_rgb(held / f"{seed}.png", 16, 24, seed=200 + seed)
    code, output = invoke("sensitivity", "--weights", tiny_checkpoint, "--calib", tiny_calibration,
                          "--data", held, "--limit", "2", "--stages", "1", "-o", tmp_path / "s.json")
    assert code == 0, output
    assert "INT8 sensitivity" in output and "full INT8" in output
    report = json.loads((tmp_path / "s.json").read_text())
    ranking = report["ranking"]
    assert len(ranking) == 11 and report["held_out_images"] == [str(held / "0.png"), str(held / "2.png")]
    assert [r["fidelity"]["psnr_min_db"] for r in ranking] == sorted(r["fidelity"]["psnr_min_db"] for r in ranking)
    assert report["full_int8"]["int8_mac_share"] == 1.0
    assert report["coverage"]["frames"] == 2 and report["coverage"]["tensors"] > 0
    assert "calibration coverage on 2 held-out images" in output


def test_sensitivity_refuses_calibration_frames_as_held_out(tiny_checkpoint, tiny_calibration, tmp_path):
    code, output = invoke("sensitivity", "--weights", tiny_checkpoint, "--calib", tiny_calibration,
                          "--data", tmp_path / "calib_src")
    assert code == 2 and "in the calibration set" in output
