"""Hostile inputs of ``serve`` and of the ``triton`` backend's URLs: exit 2 with the reason, before
any server starts or any output is written (issue 19)."""

import socket

import pytest

from conftest import invoke_cli, write_rgb
from sapnet_export.serve.server import free_ports




@pytest.mark.parametrize("option, value, expected", [
    ("--max-batch", "0", "--max-batch"), ("--max-batch", "nan", "--max-batch"),
    ("--http-port", "0", "--http-port"), ("--grpc-port", "70000", "--grpc-port"),
    ("--batch-delay-us", "-1", "--batch-delay-us"), ("--instances", "0", "--instances"),
    ("--max-megapixels", "nan", "--max-megapixels"), ("--max-megapixels", "0", "--max-megapixels"),
    ("--tile", "0x64", "--tile"), ("--tile", "big", "--tile"), ("--overlap", "-3", "--overlap"),
])
def test_serve_refuses_bad_options(option, value, expected):
    code, output = invoke_cli("serve", option, value)
    assert code == 2 and expected in output, output
    assert "Traceback" not in output


def test_serve_refuses_one_port_for_two_endpoints():
    (port,) = [str(p) for p in free_ports(1)]
    code, output = invoke_cli("serve", "--http-port", port, "--grpc-port", port, "--metrics-port", "1")
    assert code == 2 and "must differ" in output, output


def test_serve_refuses_a_missing_model_and_the_triton_backend(tmp_path):
    ports = [str(p) for p in free_ports(3)]
    opts = ["--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]]
    code, output = invoke_cli("serve", "--model", tmp_path / "missing.onnx", *opts)
    assert code == 2 and "missing.onnx" in output, output
    code, output = invoke_cli("serve", "--backend", "triton", "--model", "grpc://127.0.0.1:1/x", *opts)
    assert code == 2 and "serve runs the model itself" in output, output


@pytest.mark.parametrize("url, expected", [
    ("grpc://127.0.0.1/sapnet", "give the port"), ("grpc://127.0.0.1:8001/", "expected grpc://"),
    ("grpc://127.0.0.1:99999/sapnet", "expected grpc://"), ("http://[::1/sapnet", "expected grpc://"),
    ("grpc://127.0.0.1:8001/a/1/extra", "expected grpc://"), ("grpc://:8001/sapnet", "expected grpc://"),
    ("http://127.0.0.1:8000/sapnet?x=1", "expected grpc://"),
])
def test_triton_urls_malformed(url, expected, tmp_path):
    (tmp_path / "data").mkdir()
    write_rgb(tmp_path / "data" / "a.png")
    for args in (("derain", tmp_path / "data", "-o", tmp_path / "out", "--backend", "triton", "--model", url),
                 ("verify", url, "--data", tmp_path / "data")):
        code, output = invoke_cli(*args)
        assert code == 2 and expected in output and "Traceback" not in output, (args, output)
    assert not (tmp_path / "out").exists()


def test_triton_backend_needs_a_url_and_no_device(tmp_path):
    write_rgb(tmp_path / "a.png")
    code, output = invoke_cli("derain", tmp_path, "-o", tmp_path / "o", "--backend", "triton")
    assert code == 2 and "needs --model grpc://" in output, output
    code, output = invoke_cli("derain", tmp_path, "-o", tmp_path / "o", "--backend", "triton", "--model",
                              "grpc://127.0.0.1:1/x", "--device", "cuda")
    assert code == 2 and "the server chooses the device" in output, output


def test_contract_check_names_what_differs():
    from sapnet_export.errors import InputError
    from sapnet_export.runners.triton_runner import check_contract

    good = {"inputs": [{"name": "rainy", "datatype": "FP32", "shape": [-1, 3, -1, -1]}],
            "outputs": [{"name": "derained", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]}
    check_contract("u", good)
    bad_cases = [({"inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]}, "not a sapnet"),
                 ({"inputs": [{"name": "rainy", "datatype": "FP16", "shape": [-1, 3, -1, -1]}]}, "FP16"),
                 ({"outputs": [{"name": "derained", "datatype": "FP32", "shape": [3, -1, -1]}]}, "[3, -1, -1]"),
                 ({"inputs": []}, "not a sapnet")]
    for change, expected in bad_cases:
        with pytest.raises(InputError, match=None) as error:
            check_contract("u", {**good, **change})
        assert expected in str(error.value)


def test_bench_triton_server_down_fails_before_anything_is_made(tiny_models, tmp_path):
    (port,) = free_ports(1)
    code, output = invoke_cli("bench", "--weights", tiny_models["checkpoint"], "--data", tiny_models["data"],
                              "--formats", "onnx", "--triton", f"grpc://127.0.0.1:{port}/sapnet",
                              "--workdir", tmp_path / "w", "--log", tmp_path / "b.log")
    assert code == 2 and "could not reach the server" in output, output
    assert not (tmp_path / "w").exists() and not (tmp_path / "b.log").exists()
