"""The Python environment of Triton's Python-backend stub, and the shared libpython it loads.

Why a second environment: PyTriton runs each model instance in ``triton_python_backend_stub``, a
C++ program that embeds Python and hands output tensors to the server through pybind11. The stub in
``nvidia-pytriton`` 0.7.0 is built against NumPy 1: under NumPy 2 it reads the element size from the
old ``PyArray_Descr`` layout, gets 0, and every response arrives with the right shape and **no data**
(measured here: ``raw_output_contents: ""``, tritonclient's ``as_numpy`` then fails with "cannot
reshape array of size 0"). This project pins NumPy 2, so the stub gets its own environment: a venv of
the same interpreter whose site-packages holds NumPy :data:`STUB_NUMPY` first and then, through a
``.pth`` line, this environment's site-packages for everything else (pyzmq, PyTriton's proxy code).
The model itself (the toolkit's Runner) runs in the ``serve`` process with NumPy 2; only the stub's
side of PyTriton's socket uses NumPy 1. The stub is pointed at it with the Python backend's
``EXECUTION_ENV_PATH`` parameter (Triton python_backend README, "Using Custom Python Execution
Environments"; a directory is accepted as well as a packed archive).

Why ``LD_LIBRARY_PATH``: the stub links ``libpython3.X.so`` and finds it on the system library path;
with an interpreter that is not the system one (pyenv, conda, another patch release) it loads another
patch version, which fails (``'_thread.RLock' object has no attribute '_recursion_count'``).
:func:`libpython_env` puts this interpreter's own ``LIBDIR`` first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from sapnet_export.errors import InputError

#: NumPy release the stub environment holds (the last NumPy 1, with wheels for Python 3.9-3.12).
STUB_NUMPY = "1.26.4"
#: Marker written last: an environment without it is incomplete and is rebuilt.
_MARKER = "sapnet-stub-env.txt"


def default_stub_env() -> Path:
    """``$SAPNET_TRITON_STUB_ENV``, else ``~/.cache/sapnet-export/triton-stub-py3.X-HASH``: one per
    Python minor version (the stub embeds that version) and per environment (HASH of this
    environment's site-packages, which the stub environment's ``.pth`` names)."""
    if os.environ.get("SAPNET_TRITON_STUB_ENV"):
        return Path(os.environ["SAPNET_TRITON_STUB_ENV"])
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    digest = hashlib.sha256(sysconfig.get_paths()["purelib"].encode()).hexdigest()[:10]
    return Path.home() / ".cache" / "sapnet-export" / f"triton-stub-{tag}-{digest}"


def libpython_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``environ`` (default ``os.environ``) with this interpreter's ``LIBDIR``
    first on ``LD_LIBRARY_PATH`` (see the module docstring).

    Raises:
        InputError: this Python has no shared ``libpython`` (built without ``--enable-shared``), which
            the stub needs; the message says how to get one.
    """
    env = dict(os.environ if environ is None else environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("LDLIBRARY") or ""
    shared = f"libpython{sysconfig.get_python_version()}.so"
    if not (Path(libdir) / shared).exists() and not (name.endswith(".so") and (Path(libdir) / name).exists()):
        raise InputError(f"{sys.executable}: no shared {shared} in {libdir or '(no LIBDIR)'}; Triton's "
                         "Python-backend stub embeds Python and needs it. Use an interpreter built with "
                         "--enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install "
                         f"{sysconfig.get_python_version()}; the system's python3 and conda's have it)")
    env["LD_LIBRARY_PATH"] = os.pathsep.join([libdir] + [p for p in env.get("LD_LIBRARY_PATH", "").split(
        os.pathsep) if p and p != libdir])
    return env


def _site_packages(root: Path) -> Path:
    return root / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"


def ensure_stub_env(path: Path | None = None, *, log=print) -> Path:  # noqa: ANN001 - log(str)
    """Return a ready stub environment at ``path`` (:func:`default_stub_env`), building it once:
    ``venv`` of this interpreter (no pip), NumPy :data:`STUB_NUMPY` installed into it with this
    environment's pip (``--no-deps --only-binary``), and a ``.pth`` naming this environment's
    site-packages. About 60 MB; takes a few seconds with a pip cache.

    Raises:
        InputError: the environment cannot be created or NumPy cannot be installed (offline without a
            pip cache): the message gives the pip command to run by hand.
    """
    path = Path(path or default_stub_env())
    if (path / _MARKER).exists():
        return path
    log(f"preparing the Python environment of Triton's stub at {path} (NumPy {STUB_NUMPY}; once)")
    shutil.rmtree(path, ignore_errors=True)
    site = _site_packages(path)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--only-binary", ":all:", "--target", str(site), f"numpy=={STUB_NUMPY}"]
    try:
        venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InputError(f"{path}: cannot build the stub environment: {exc}") from exc
    if result.returncode != 0:
        raise InputError(f"{path}: installing NumPy {STUB_NUMPY} for Triton's stub failed "
                         f"({result.stderr.strip().splitlines()[-1:] or 'no message'}); run: "
                         + " ".join(command))
    (site / "zz_sapnet_serving_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (path / _MARKER).write_text(f"numpy {STUB_NUMPY}\nfor {sys.executable}\n")
    return path


if __name__ == "__main__":  # python -m sapnet_export.serve.stub_env: build it ahead of time (CI)
    print(ensure_stub_env())
