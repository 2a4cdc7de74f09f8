from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_rgb
from training.data import (DataError, PatchDataset, load_clean, load_paired_folder, patch_grid,
                           synthetic_pairs)


def _paired(root: Path, layout: str, count: int = 2, size=(40, 48)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        if layout == "input/target":
            (root / "input").mkdir(exist_ok=True)
            (root / "target").mkdir(exist_ok=True)
            write_rgb(root / "input" / f"{i}.png", *size, seed=i)
            write_rgb(root / "target" / f"{i}.png", *size, seed=100 + i)
        else:  # Rain100L/RainTrainH as released: rain-N next to norain-N
            write_rgb(root / f"rain-{i}.png", *size, seed=i)
            write_rgb(root / f"norain-{i}.png", *size, seed=100 + i)
    return root


@pytest.mark.parametrize("layout", ["input/target", "rain-N/norain-N"])
def test_paired_folders_load_in_both_common_layouts(tmp_path, layout):
    pairs = load_paired_folder(_paired(tmp_path / "d", layout, count=3))
    assert len(pairs) == 3
    for pair in pairs:
        assert pair.rainy.shape == pair.clean.shape == (3, 40, 48)
        assert not np.array_equal(pair.rainy, pair.clean)
    assert [p.name for p in pairs] == (["1.png", "2.png", "3.png"] if layout == "input/target"
                                       else ["rain-1.png", "rain-2.png", "rain-3.png"])


def test_an_unmatched_pair_names_the_file(tmp_path):
    root = _paired(tmp_path / "d", "input/target")
    write_rgb(root / "input" / "orphan.png", 40, 48)
    with pytest.raises(DataError, match="orphan.png"):
        load_paired_folder(root)


def test_an_unreadable_image_names_the_file(tmp_path):
    root = _paired(tmp_path / "d", "input/target")
    (root / "target" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"target/2\.png"):
        load_paired_folder(root)


def test_pairs_of_different_sizes_are_refused(tmp_path):
    root = _paired(tmp_path / "d", "input/target")
    write_rgb(root / "target" / "1.png", 30, 48)
    with pytest.raises(DataError, match=r"1\.png: size 40x48 differs"):
        load_paired_folder(root)


def test_a_folder_in_no_known_layout_says_which_layouts_are_known(tmp_path):
    write_rgb(tmp_path / "a.png")
    with pytest.raises(DataError, match="input/ \\+ target/"):
        load_paired_folder(tmp_path)


def test_patch_grid_is_the_official_stride_80_windows_and_refuses_small_images():
    grid = patch_grid("x.png", 260, 180, 100, 80)
    assert grid == [(0, 0), (0, 80), (80, 0), (80, 80), (160, 0), (160, 80)]
    with pytest.raises(DataError, match=r"x\.png: 90x300 is smaller than one 100x100 patch"):
        patch_grid("x.png", 90, 300, 100, 80)


def test_patches_are_deterministic_per_epoch_and_change_between_epochs(tmp_path):
    write_rgb(tmp_path / "clean" / "a.png" if (tmp_path / "clean").mkdir() is None else None, 64, 64)
    pairs = load_paired_folder(_paired(tmp_path / "d", "input/target", size=(64, 64)))
    clean = load_clean(tmp_path / "clean")
    dataset = PatchDataset(pairs, clean, patch=32, stride=16, seed=5)
    assert len(dataset) == 3 * 9
    first = [dataset[i] for i in range(len(dataset))]
    again = [dataset[i] for i in range(len(dataset))]
    for (r1, c1), (r2, c2) in zip(first, again):
        assert torch.equal(r1, r2) and torch.equal(c1, c2)
        assert r1.shape == c1.shape == (3, 32, 32) and r1.dtype == torch.float32
    dataset.set_epoch(1)
    synthetic = [i for i, (source, _, _) in enumerate(dataset.index) if source == 2]
    assert any(not torch.equal(dataset[i][0], first[i][0]) for i in synthetic)
    # Paired patches are flips of the stored windows, never altered otherwise.
    rainy, clean_patch = dataset[0]
    window = torch.from_numpy(pairs[0].clean[:, :32, :32])
    assert any(torch.equal(clean_patch, torch.flip(window, dims)) for dims in ([], [2], [1], [1, 2]))


def test_synthetic_validation_pairs_are_fixed_by_the_seed(tmp_path):
    (tmp_path / "c").mkdir()
    write_rgb(tmp_path / "c" / "a.png", 48, 48)
    clean = load_clean(tmp_path / "c")
    a, b = synthetic_pairs(clean, seed=1), synthetic_pairs(clean, seed=1)
    np.testing.assert_array_equal(a[0].rainy, b[0].rainy)
    assert a[0].clean is clean[0][1]


def test_no_data_at_all_is_refused():
    with pytest.raises(DataError, match="no training data"):
        PatchDataset()
