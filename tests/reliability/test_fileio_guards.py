"""The one output-path check and the group atomic write (sapnet_export/fileio.py)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sapnet_export.errors import InputError
from sapnet_export.fileio import (TEMPORARY_PATTERN, atomic_output, atomic_outputs, check_output,
                                  clean_stale_temporaries)


def test_directory_destination_refused(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        check_output(tmp_path, force=True)


def test_parent_is_a_file_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"f is a file, not a folder"):
        check_output(tmp_path / "f" / "deeper" / "out.onnx")


def test_unwritable_folder_refused(unwritable_dir):
    with pytest.raises(InputError, match="not writable"):
        check_output(unwritable_dir / "sub" / "out.json")


def test_folder_kind(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output(tmp_path / "file", kind="folder")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.png").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        check_output(tmp_path / "full", kind="folder", force=False)
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", kind="folder", force=False) == tmp_path / "empty"


def test_group_lands_together_or_not_at_all(tmp_path):
    model, report = tmp_path / "m.onnx", tmp_path / "m.onnx.json"
    with pytest.raises(RuntimeError):
        with atomic_outputs([model, report]) as (tmp_model, tmp_report):
            tmp_report.write_text("{}")
            tmp_model.write_text("model")
            raise RuntimeError("the check failed")
    assert os.listdir(tmp_path) == []
    with atomic_outputs([model, report]) as (tmp_model, tmp_report):
        tmp_model.write_text("model")
        tmp_report.write_text("{}")
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.json"]


def test_failed_rename_restores_the_old_pair(tmp_path, monkeypatch):
    model, report = tmp_path / "m.onnx", tmp_path / "m.onnx.json"
    model.write_text("old model")
    report.write_text("old report")
    real_replace = os.replace

    def flaky(src, dst):
        if Path(dst) == report and Path(src).name.endswith(".tmp") and ".bak" not in Path(src).name:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(InputError, match="No space left"):
        with atomic_outputs([model, report]) as (tmp_model, tmp_report):
            tmp_model.write_text("new model")
            tmp_report.write_text("new report")
    assert model.read_text() == "old model" and report.read_text() == "old report"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.json"]


def test_sigkill_mid_write_leaves_only_a_hidden_temporary_then_it_is_cleaned(tmp_path):
    target = tmp_path / "out.onnx"
    child = textwrap.dedent(f"""
        import os, signal, time
        from sapnet_export.fileio import atomic_output
        with atomic_output({str(target)!r}) as tmp:
            tmp.write_bytes(b"half")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = os.listdir(tmp_path)
    assert not target.exists()
    assert len(names) == 1 and names[0].startswith(".out.onnx.") and TEMPORARY_PATTERN.match(names[0])
    (tmp_path / "unrelated.tmp").write_text("not ours")
    check_output(target)  # the next run's check removes the dead writer's temporary
    assert sorted(os.listdir(tmp_path)) == ["unrelated.tmp"]


def test_live_writers_temporaries_are_kept(tmp_path):
    live = tmp_path / f".x.{os.getppid()}.0123abcd.tmp"
    live.write_text("a concurrent write")
    assert clean_stale_temporaries(tmp_path) == [] and live.exists()


def test_atomic_output_checks_first(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        with atomic_output(tmp_path / "d"):
            raise AssertionError("the block must not run")
