import hashlib
import json
import math
import os
import stat

import pytest

from sapnet_export.errors import InputError
from sapnet_export.fileio import atomic_output, sha256_file, write_json


def test_atomic_output_renames_on_success(tmp_path):
    target = tmp_path / "deep" / "out.bin"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert list(target.parent.iterdir()) == [target]
    assert stat.S_IMODE(target.stat().st_mode) & 0o044  # readable by others, not mkstemp's 0600


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_existing_file_needs_force(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists; pass --force"):
        with atomic_output(target, force=False):
            pass


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path, chunk_bytes=7) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_write_json_is_atomic_and_writes_inf(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": math.inf, "b": [1.5, -math.inf]})
    assert json.loads(path.read_text()) == {"a": "inf", "b": [1.5, "-inf"]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
