import pytest

from sapnet_export.errors import InputError
from sapnet_export.runners import BACKENDS, create_runner


def test_backends_resolve_to_runner_classes():
    import importlib

    from sapnet_export.runners.base import Runner

    for name, target in BACKENDS.items():
        module, cls = target.split(":")
        assert issubclass(getattr(importlib.import_module(module), cls), Runner), name


def test_unknown_backend():
    with pytest.raises(InputError, match="backend 'tflite': choose one of torch, onnxruntime"):
        create_runner("tflite")


def test_torch_backend_refuses_a_model_file(tiny_checkpoint):
    with pytest.raises(InputError, match="the torch backend runs --weights"):
        create_runner("torch", model="x.onnx", weights=str(tiny_checkpoint))


def test_onnxruntime_backend_needs_a_model():
    with pytest.raises(InputError, match="needs --model"):
        create_runner("onnxruntime")
