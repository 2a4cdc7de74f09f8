from pathlib import Path

import pytest

from conftest import write_rgb
from sapnet_export.errors import InputError
from sapnet_export.data.images import discover_images
from sapnet_export.data.pairs import pair_ground_truth


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_rgb(folder / name, 4, 4)


@pytest.mark.parametrize("rainy, clean", [
    ("1.png", "1.png"),                 # same name (Rain100L as shipped here)
    ("sub/7.png", "sub/7.png"),         # same relative path
    ("3.jpg", "3.png"),                 # same stem, other suffix
    ("rain-12.png", "norain-12.png"),   # Rain100L/H, JORDER release
    ("rain_5.png", "norain_5.png"),
    ("9_rain.png", "9_clean.png"),
    ("4_rain.png", "4_norain.png"),
    ("901_3.jpg", "901.jpg"),           # Rain1400: rendering 3 of background 901
])
def test_pairing_rules(tmp_path, rainy, clean):
    _touch(tmp_path / "input", rainy)
    _touch(tmp_path / "gt", clean)
    pairing = pair_ground_truth(discover_images([tmp_path / "input"]), tmp_path / "gt")
    assert [(p.name, g.relative_to(tmp_path / "gt").as_posix()) for p, _, g in pairing.pairs] == [
        (Path(rainy).name, clean)]
    assert pairing.unmatched_inputs == pairing.unmatched_ground_truth == []


def test_unmatched_on_both_sides_are_listed(tmp_path):
    _touch(tmp_path / "input", "1.png", "2.png", "10.png")
    _touch(tmp_path / "gt", "1.png", "3.png", "10.png")
    pairing = pair_ground_truth(discover_images([tmp_path / "input"]), tmp_path / "gt")
    assert [p.name for p, _, _ in pairing.pairs] == ["1.png", "10.png"]
    assert [p.name for p in pairing.unmatched_inputs] == ["2.png"]
    assert [p.name for p in pairing.unmatched_ground_truth] == ["3.png"]


def test_gt_must_be_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        pair_ground_truth([], tmp_path / "none")
