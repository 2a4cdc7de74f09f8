import pytest
from PIL import Image

from sapnet_export.data.images import discover_images
from sapnet_export.data.pairs import pair_ground_truth
from sapnet_export.verify.report import COLUMNS, markdown_table, summary_rows, write_report
from sapnet_export.runners.torch_runner import TorchRunner
from sapnet_export.verify.parity import open_target, run_verification
from sapnet_export.model.checkpoints import load_weights


@pytest.fixture
def verification(tiny_models):
    model, info = load_weights(tiny_models["checkpoint"])
    reference = TorchRunner(model, info, device="cpu")
    pairing = pair_ground_truth(discover_images([tiny_models["data"]]), tiny_models["gt"])
    targets = [open_target(str(tiny_models[k]), weights="official", stages=None) for k in ("int8", "damaged")]
    return run_verification(reference, info.sha256, targets, [(p, g) for p, _, g in pairing.pairs],
                            data=tiny_models["data"], gt=tiny_models["gt"], runs=2)


def test_summary_rows_and_markdown(verification):
    rows = summary_rows(verification.payload)
    assert rows[0]["status"] == "reference" and rows[0]["speed-up"] == "1.00x"
    assert rows[1]["status"] == "ok" and rows[2]["status"].startswith("failed_gate: fidelity mean")
    assert all(set(row) == set(COLUMNS) for row in rows)
    table = markdown_table(verification.payload)
    assert table.count("\n") == len(rows) + 1 and "| target | status |" in table


def test_report_folder_has_the_table_and_readable_pictures(verification, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "stale.png").write_bytes(b"old")  # an earlier report is replaced, not merged
    index = write_report(verification, out, "tiny verify")
    text = index.read_text()
    assert text.startswith("# tiny verify") and "failed_gate" in text and "gate fidelity FAILED" in text
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == ["fidelity_per_image.png", "grid_onnxruntime-int8-damaged-onnx.png",
                        "grid_onnxruntime-int8-int8-onnx.png", "latency.png", "quality_per_image.png"]
    for name in pictures:
        assert f"]({name})" in text
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left behind
