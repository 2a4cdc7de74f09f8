import sys
from datetime import datetime, timedelta, timezone

from sapnet_export.provenance import command_line, stamp


def test_stamp_records_the_command_and_the_utc_time(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/sapnet-export", "onnx", "-o", "a b.onnx"])
    assert command_line() == "sapnet-export onnx -o 'a b.onnx'"
    recorded = stamp()
    assert recorded["command"] == "sapnet-export onnx -o 'a b.onnx'"
    when = datetime.fromisoformat(recorded["created_utc"])
    assert when.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=1)
    assert stamp("given")["command"] == "given"
