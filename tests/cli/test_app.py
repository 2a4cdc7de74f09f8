import os
import subprocess
import sys
from pathlib import Path

from conftest import invoke_cli as invoke


def test_official_unreachable_without_cache_exits_2_from_the_console_script(tmp_path):
    """The installed `sapnet-export` script, offline, with an empty cache (see conftest)."""
    script = Path(sys.executable).parent / "sapnet-export"
    result = subprocess.run([str(script), "onnx", "--weights", "official", "-o", str(tmp_path / "m.onnx")],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert result.returncode == 2
    assert "cannot download the published SAPNet checkpoint" in result.stderr
    assert "SAPNET_WEIGHTS" in result.stderr and not (tmp_path / "m.onnx").exists()


def test_usage_error_exits_2():
    code, _ = invoke("derain")
    assert code == 2
