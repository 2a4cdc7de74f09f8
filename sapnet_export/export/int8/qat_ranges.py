"""The activation ranges that quantization-aware training learned, as a checkpoint carries them, and
their placement on an exported graph.

``sapnet-train qat`` (``training/qat.py``) fine-tunes the weights with fake quantization at the
places the ``tensorrt`` QDQ profile quantizes (every Conv input, int8 symmetric per tensor; every Conv weight, int8 symmetric per output channel), one range per tensor **per stage**: the
stages share their weights but not their activations. The ranges are fixed during the fine-tuning, so the weights
learn to live with them; an int8 export must then use those ranges, not recalibrate. This module is
the record's writer (:meth:`QatRanges.as_dict`) beside its reader (:func:`read_qat_ranges`), and
the step that turns it into the ranges of an ONNX graph's tensors (:func:`graph_ranges`), handed
to ONNX Runtime's quantizer as its calibration cache (:func:`write_ort_cache`).

Record (checkpoint metadata ``qat``, format :data:`QAT_FORMAT`)::

    {"format": "sapnet-export/qat-ranges-v1", "profile": "tensorrt", "stages": 6,
     "ranges": [{"convs": ["conv_i.0", "conv_f.0", "conv_g.0", "conv_o.0"], "stage": 0,
                 "output": false, "absmax": 1.73}, ...]}

``convs`` are the module names (``SAPNet.named_modules``) of the Convs that read one tensor (the four
LSTM gates read one concatenation; a CRA layer's ``conv_du.0`` and ``conv_1_1`` one pooled vector),
or, with ``output`` true, of the one Conv that writes it: records of the first QAT version, whose
profile quantized Conv outputs too, have such entries; they are read and not used, and ``sapnet-train
qat`` writes none;
``stage`` counts from 0; ``absmax`` (> 0, finite) is the symmetric range: the int8 scale is
``absmax / 127``, as ONNX Runtime computes it for symmetric int8 (``quant_utils.compute_scale_zp``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from sapnet_export.errors import InputError

#: The ``format`` of the record.
QAT_FORMAT = "sapnet-export/qat-ranges-v1"
#: The QDQ profile whose quantization the fine-tuning emulates (and the only one such ranges fit).
QAT_PROFILE = "tensorrt"
#: What an int8 report records as the calibration method of a graph quantized with learned ranges.
QAT_METHOD = "qat (learned ranges)"
#: The prefix the exporter gives the network's parameters (``_StagesWrapper.model``).
_PARAM_PREFIX = "model."


@dataclass(frozen=True)
class QatRange:
    """One learned range: the Convs (module names) that read one tensor (``output`` False) or the
    Conv that writes it (``output`` True, one name), the stage (0-based) and the symmetric range
    ``absmax`` (the tensor's values are clipped to [-absmax, absmax])."""

    convs: tuple[str, ...]
    stage: int
    absmax: float
    output: bool = False


@dataclass(frozen=True)
class QatRanges:
    """The learned ranges of a fine-tuned checkpoint.

    Attributes:
        profile: the QDQ profile emulated (:data:`QAT_PROFILE`).
        stages: stages the fine-tuning ran (an export may run fewer, not more).
        ranges: one per Conv input and per Conv output, per stage.
        source: where the record was read (the checkpoint's path), for messages; not written.
    """

    profile: str
    stages: int
    ranges: tuple[QatRange, ...]
    source: str = "QAT ranges"

    def as_dict(self) -> dict:
        """The record in plain types (checkpoint metadata ``qat``)."""
        return {"format": QAT_FORMAT, "profile": self.profile, "stages": self.stages,
                "ranges": [{"convs": list(r.convs), "stage": r.stage, "output": r.output,
                            "absmax": float(r.absmax)} for r in self.ranges]}

    def by_conv(self) -> dict[tuple[str, int, bool], float]:
        """``{(conv module name, stage, output): absmax}``."""
        return {(conv, r.stage, r.output): r.absmax for r in self.ranges for conv in r.convs}


def read_qat_ranges(metadata: dict, where: str) -> QatRanges | None:
    """The record in a checkpoint's ``metadata`` (:attr:`~sapnet_export.model.checkpoints.WeightsInfo.metadata`),
    or None when it has none.

    Raises:
        InputError: the record is malformed (``where`` names the checkpoint): another format, a
            profile other than :data:`QAT_PROFILE`, a range that is not finite and positive.
    """
    record = metadata.get("qat")
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("format") != QAT_FORMAT:
        raise InputError(f"{where}: metadata 'qat' is not a {QAT_FORMAT} record")
    if record.get("profile") != QAT_PROFILE:
        raise InputError(f"{where}: QAT ranges for profile {record.get('profile')!r}; only "
                         f"{QAT_PROFILE!r} is known")
    try:
        ranges = tuple(QatRange(tuple(str(c) for c in r["convs"]), int(r["stage"]), float(r["absmax"]),
                                bool(r["output"])) for r in record["ranges"])
        stages = int(record["stages"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: malformed QAT range record ({exc!r})") from None
    bad = [r for r in ranges if not (math.isfinite(r.absmax) and r.absmax > 0) or not r.convs]
    if bad or not ranges:
        raise InputError(f"{where}: QAT record holds {len(bad)} ranges that are not finite and "
                         f"positive (or no ranges at all)")
    return QatRanges(QAT_PROFILE, stages, ranges, where)


def graph_ranges(proto: onnx.ModelProto, qat: QatRanges) -> dict[str, tuple[float, float]]:
    """``{tensor name: (-absmax, absmax)}`` for the activation input of every Conv of the fp32 export
    ``proto`` (the ``tensorrt`` profile quantizes Conv inputs only; the output ranges a record written
    by an earlier version holds, ``output`` true, are not used).

    A Conv is identified by its weight (the initializer ``model.<module>.weight``, shared by the
    stages) and its stage by the order in which the graph's Convs use that weight (the exporter writes
    the stages in order).

    Raises:
        InputError: a Conv of the graph has no learned range (the graph runs more stages than the
            fine-tuning, or is not this network's), or one tensor got two different ranges; the
            messages name ``qat.source``.
    """
    where = qat.source
    learned = qat.by_conv()
    uses: dict[str, int] = {}
    out: dict[str, tuple[float, float]] = {}
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        module = weight.removeprefix(_PARAM_PREFIX).removesuffix(".weight")
        stage = uses.get(weight, 0)
        uses[weight] = stage + 1
        absmax = learned.get((module, stage, False))
        if absmax is None:
            raise InputError(f"{where}: no learned range for the input of Conv {node.name} ({module}, "
                             f"stage {stage + 1}); the fine-tuning ran {qat.stages} stages")
        value = (-absmax, absmax)
        if out.setdefault(node.input[0], value) != value:
            raise InputError(f"{where}: tensor {node.input[0]} has two learned ranges")
    return out


def write_ort_cache(ranges: dict[str, tuple[float, float]], path: str | os.PathLike) -> Path:
    """Write ``ranges`` as ONNX Runtime's calibration cache (``quantize_static``'s
    ``calibration_cache_path``, method MinMax), so that its quantizer takes them instead of
    calibrating, and return the path."""
    import numpy as np
    from onnxruntime.quantization.calibrate import (CalibrationMethod, TensorData, TensorsData,
                                                    save_tensors_data)

    data = TensorsData(CalibrationMethod.MinMax,
                       {name: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                        for name, (lo, hi) in ranges.items()})
    save_tensors_data(data, Path(path))
    return Path(path)
