"""``sapnet-export inspect``: describe an ONNX file or an engine (tables, or JSON with --json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console


@app.command("inspect")
def inspect_command(
    file: Annotated[Path, typer.Argument(help="An .onnx file, or an .engine/.plan with its sidecar.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full description as JSON.")] = False,
) -> None:
    """Describe an ONNX file (opset, metadata, ops, QDQ summary, TensorRT QDQ verdict) or an engine
    (sidecar provenance, I/O, profile, per-layer precision; tactics where a GPU can load it)."""
    from sapnet_export.fileio import to_json
    from sapnet_export.engine.inspection import inspect_file

    report = inspect_file(file)
    if as_json:
        typer.echo(to_json(report), nl=False)
        return
    if report["kind"] == "onnx":
        _print_onnx(report)
    else:
        _print_engine(report)


def _two_columns(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _io(entries: list[dict]) -> str:
    return "; ".join(f"{e['name']} {e['dtype']} [{', '.join(map(str, e['shape']))}]" for e in entries)


def _print_onnx(report: dict) -> None:
    meta, qdq = report["metadata"], report["qdq"]
    rows = [("file", f"{report['file']} ({report['size_bytes'] / 1e6:.2f} MB, sha256 {report['sha256'][:12]})"),
            ("opset", ", ".join(f"{k} {v}" for k, v in report["opset"].items())),
            ("producer", report["producer"] or "-"), ("precision", report["precision"]),
            ("inputs", _io(report["inputs"])), ("outputs", _io(report["outputs"])),
            ("nodes", str(report["nodes"])), ("identity", report["identity"]),
            ("ops", ", ".join(f"{k} {v}" for k, v in report["op_histogram"].items()))]
    if qdq["quantize_linear"] or qdq["dequantize_linear"]:
        kept = qdq["conv_float"]
        rows += [("QDQ", f"{qdq['quantize_linear']} QuantizeLinear, {qdq['dequantize_linear']} "
                         f"DequantizeLinear; {qdq['quantized_activations']} activations and "
                         f"{qdq['quantized_weights']} weights quantized"),
                 ("Conv in int8 / float", f"{qdq['conv_int8']} / {len(kept)}"
                  + (f" (float: {', '.join(kept[:6])}{', ...' if len(kept) > 6 else ''})" if kept else ""))]
        verdict = report["tensorrt_qdq"]
        rows.append(("TensorRT QDQ rules", "ok" if verdict["ok"] else
                     f"{verdict['violations']} violations, e.g. {verdict['listed'][0]}"))
    for key in ("stages", "checkpoint", "checkpoint_sha256", "qdq_profile", "calib_method",
                "calibration", "int8_groups", "float_groups", "shape", "pooling", "command", "created_utc",
                "sapnet_export_version"):
        if key in meta:
            rows.append((f"metadata: {key}", meta[key]))
    _two_columns(f"ONNX {report['file']}", rows)


def _print_engine(report: dict) -> None:
    builder, target, prof = report["builder"], report["target"], report["profile"]
    hashes = report["provenance"]["sha256"]
    rows = [("file", f"{report['file']} ({report['size_bytes'] / 1e6:.1f} MB, sha256 {report['sha256'][:12]}"
                     + (")" if report["sha256_matches_sidecar"] else ", DOES NOT MATCH its sidecar)")),
            ("builder", f"{builder['name']} {builder['version']}"),
            ("target", ", ".join(target["compute_capabilities"])
             + (f" ({target['gpu']})" if target.get("gpu") else "")),
            ("precision", report["precision"]), ("stages", str(report["stages"])),
            ("profile min:opt:max", ":".join("x".join(map(str, prof[k])) for k in ("min", "opt", "max"))),
            ("I/O", _io(report["io"])),
            ("built from", f"{report['provenance']['files'].get('onnx')} (sha256 {str(hashes['onnx'])[:12]})"),
            ("checkpoint sha256", str(hashes.get("checkpoint"))),
            ("calibration manifest sha256", str(hashes.get("calibration_manifest"))),
            ("build time", f"{report['build_seconds']:.1f} s"),
            ("settings", ", ".join(f"{k} {v}" for k, v in (report["settings"] or {}).items())),
            ("layers (network, typed)", ", ".join(f"{k}: {v}" for k, v in
                                                  (report["network_layers"]["precisions"] or {}).items())),
            ("engine layers / tactics", report["engine_layers_source"] if report["engine_layers"] is None
             else f"{len(report['engine_layers'])} layers from {report['engine_layers_source']} (--json)")]
    _two_columns(f"engine {report['file']}", rows)
