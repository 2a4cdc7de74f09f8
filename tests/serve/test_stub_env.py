"""The environment of Triton's Python-backend stub (serve/stub_env.py): NumPy 1 first, this
environment's packages after it, and this interpreter's libpython first on LD_LIBRARY_PATH."""

import subprocess
import sysconfig

from sapnet_export.serve.stub_env import STUB_NUMPY, ensure_stub_env, libpython_env


def test_libpython_dir_comes_first_and_the_rest_is_kept():
    libdir = sysconfig.get_config_var("LIBDIR")
    env = libpython_env({"LD_LIBRARY_PATH": f"/opt/x:{libdir}:/opt/y", "OTHER": "1"})
    assert env["LD_LIBRARY_PATH"].split(":") == [libdir, "/opt/x", "/opt/y"]
    assert env["OTHER"] == "1"
    assert libpython_env({})["LD_LIBRARY_PATH"] == libdir


def test_stub_env_has_numpy_1_then_this_environment():
    env = ensure_stub_env()
    code = ("import numpy, zmq, tritonclient, sys; "
            "print(numpy.__version__, numpy.__file__.startswith(sys.prefix), sys.prefix)")
    result = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            timeout=120, env=libpython_env())
    assert result.returncode == 0, result.stderr
    version, inside, prefix = result.stdout.split()
    assert version == STUB_NUMPY and inside == "True" and prefix == str(env)
