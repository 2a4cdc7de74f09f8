"""The ``sapnet-export`` command: one sub-command per stage of the pipeline.

Exit codes: 0 success; 1 a check failed (fidelity, failed images); 2 usage or input error.
"""

from __future__ import annotations

from . import (calib_cmd, derain_cmd, inspect_cmd, onnx_cmd, sensitivity_cmd,  # noqa: F401 - they register
               trt_cmd, verify_cmd, bench_cmd, run_cmd, serve_cmd, triton_repo_cmd)
from ._app import app


def main() -> None:
    """Console-script entry point (``sapnet-export``)."""
    app()


__all__ = ["app", "main"]
