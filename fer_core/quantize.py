"""int8 weights: static QDQ quantization of an exported ONNX file, calibrated on training faces.

    python -m fer_core quantize --data ../shared/fer2013 --out runs/int8          # every model
    python -m fer_core quantize --model resnet18 --method minmax --out runs/int8

Each network's layers get int8 weights (one scale per output channel) and uint8 activations whose
ranges are read from `--faces` training faces (never val/ or test/), save the first and the last
layer with weights, which stay fp32,
through ONNX Runtime's quantization tooling. The file keeps its `fer_core` metadata, plus what
was done (`precision: int8`, the method, the faces, and the sha256 of the fp32 file it came from),
so serving reads it like any other export. The fp32 file stays the reference: `export` writes it
from the checkpoint, and `quantize` never overwrites its source.

Which range estimate (`--method`): "minmax" takes each activation's full range, "percentile" its
99.999th percentile (clipping rare outliers keeps resolution for the rest). `auto` quantizes with
both and keeps the one whose PublicTest (val/) answers agree most often with the fp32 file's;
PrivateTest is not looked at here (`evaluate` reports it). Whether an int8 file ships is decided
per model: its accuracy on both splits must stay within 0.2 point of the fp32 file's
(docs/performance.md has the measurements).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import WeightsError
from .preprocess import predict_proba, to_model_input
from .provenance import sha256_file
from .serving import META_KEY, OnnxModel

METHODS = ("minmax", "percentile")
PERCENTILE = 99.999  # 99.99 clipped too much: EfficientNetV2-S changed 6.9 % of its val answers, 3.9 % at 99.999
CALIBRATION_FACES = 1000  # enough for stable ranges (1,000 and 3,000 gave the same accuracy to 0.3 point)
CALIBRATION_SEED = 0
BATCH = 50
# Batches whose activations are held at once while the ranges are read: ONNX Runtime keeps every
# calibration batch's intermediate outputs in memory until it histograms them, which for
# EfficientNetV2-S at output stride 8 and 1,000 faces outgrew 20 GB; 4 batches (200 faces) at a time
# keep it to a fifth of that, and the histograms merge across the chunks.
CHUNK_BATCHES = 4


class CalibrationFaces:
    """ONNX Runtime's calibration reader over (N, 1, 48, 48) faces in batches of BATCH, one range
    of batches at a time (`set_range`, in batches), so the calibrator sees a bounded chunk."""

    def __init__(self, faces: np.ndarray) -> None:
        self.faces = faces
        self.start, self.end = 0, len(self)

    def __len__(self) -> int:
        return -(-len(self.faces) // BATCH)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end = start_index, min(end_index, len(self))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= self.end:
            return None
        batch = self.faces[self.start * BATCH : (self.start + 1) * BATCH]
        self.start += 1
        return {"faces": batch}


def chunk_batches(n_batches: int, most: int = CHUNK_BATCHES) -> int:
    """The largest chunk of at most `most` batches that divides `n_batches` (ONNX Runtime's strided
    calibration needs equal chunks)."""
    return max(d for d in range(1, max(1, min(most, n_batches)) + 1) if n_batches % d == 0)


def calibration_faces(images: np.ndarray, n: int = CALIBRATION_FACES, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """`n` faces drawn without replacement (seeded) from (N, 48, 48) uint8 training faces, as model input."""
    if len(images) == 0:
        raise ValueError("no training faces to calibrate the int8 ranges on")
    pick = np.random.default_rng(seed).choice(len(images), min(n, len(images)), replace=False)
    return to_model_input(images[np.sort(pick)])


def quantize_file(src: str | os.PathLike, out: str | os.PathLike, faces: np.ndarray, method: str = "minmax") -> Path:
    """fp32 ONNX `src` -> int8 QDQ `out`, activation ranges from `faces` ((N, 1, 48, 48) float32)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise ValueError(f"{out} is the fp32 source itself; write the int8 file elsewhere")
    proto = onnx.load(str(src))
    meta_entries = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in meta_entries:
        raise WeightsError(f"{src} has no '{META_KEY}' metadata; export it with `python -m fer_core export`")
    meta = json.loads(meta_entries[META_KEY])
    if meta.get("precision") == "int8":
        raise WeightsError(f"{src} is already int8; quantize the fp32 export")
    faces = faces[: len(faces) // BATCH * BATCH] if len(faces) >= BATCH else faces  # percentile needs equal batches
    reader = CalibrationFaces(faces)

    with tempfile.TemporaryDirectory(prefix="fer_core_quantize_") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        keep = _ends(onnx.load(str(pre)))
        raw = Path(tmp) / "int8.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # its progress chatter ("Collecting tensor data ...")
            quantize_static(
                str(pre),
                str(raw),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=keep,
                calibrate_method=CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax,
                extra_options={
                    # despite its name, ONNX Runtime strides the collection for every method
                    "CalibStridedMinMax": chunk_batches(len(reader)),
                    **({"CalibPercentile": PERCENTILE} if method == "percentile" else {}),
                },
            )
        q = onnx.load(str(raw))
    meta["precision"] = "int8"
    meta["quantization"] = {
        "format": "QDQ, per-channel int8 weights, uint8 activations",
        "kept_fp32": keep,
        "method": method if method == "minmax" else f"percentile {PERCENTILE}",
        "calibration_faces": int(len(faces)),
        "calibration_seed": CALIBRATION_SEED,
        "source_sha256": sha256_file(src),
        "onnxruntime": _ort_version(),
    }
    del q.metadata_props[:]
    for key, value in meta_entries.items():
        entry = q.metadata_props.add()
        entry.key, entry.value = key, json.dumps(meta) if key == META_KEY else value
    q.doc_string = proto.doc_string + " (int8)"
    onnx.checker.check_model(q)
    with atomic_path(out) as tmp_out:
        onnx.save(q, str(tmp_out))
    return out


def _ends(proto) -> list[str]:
    """The first and the last layer with weights (the 1-channel stem and the classifier): they stay
    fp32. Measured on the shipped ResNet18 (minmax, PublicTest): 67.73 % with every layer int8,
    67.82 % with these two kept, against 67.93 % fp32; they hold under 1 % of the compute."""
    weighted = [n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return sorted({weighted[0], weighted[-1]}) if weighted else []


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def answers(model: OnnxModel, images: np.ndarray) -> np.ndarray:
    """Single-view top class of each of (N, 48, 48) uint8 faces, through the serving path."""
    return predict_proba(model, images).argmax(1)


def quantize_model(
    name: str,
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_images: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    method: str = "auto",
    n_faces: int = CALIBRATION_FACES,
) -> dict[str, Any]:
    """Quantize one model into OUT_DIR/NAME.onnx; with `method` "auto", by each method, keeping the
    one whose answers on `val` agree most often with the fp32 file's (the most faithful copy, not
    the luckiest: an accuracy can stay put while hundreds of answers change). Returns each
    candidate's val agreement and accuracy."""
    faces = calibration_faces(train_images, n_faces)
    out = Path(out_dir) / f"{name}.onnx"
    methods = METHODS if method == "auto" else (method,)
    if method == "auto" and val is None:
        raise ValueError("method auto needs the val split to choose on")
    report: dict[str, Any] = {"model": name, "source": str(src), "candidates": {}, "agreement": {}}
    reference = None
    if val is not None:
        reference = answers(OnnxModel(src, verify=False), val[0])
        report["fp32_val_accuracy"] = float((reference == val[1]).mean())
    best: tuple[float, str] | None = None
    with tempfile.TemporaryDirectory(prefix="fer_core_quantize_") as tmp:
        for m in methods:
            try:
                candidate = quantize_file(src, Path(tmp) / f"{m}.onnx", faces, m)
            except ValueError as exc:  # e.g. percentile's histogram on an activation that never varies
                if len(methods) == 1:
                    raise
                report.setdefault("failed", {})[m] = str(exc)
                continue
            if val is not None:
                got = answers(OnnxModel(candidate, verify=False), val[0])
                report["candidates"][m] = float((got == val[1]).mean())
                report["agreement"][m] = agree = float((got == reference).mean())
                if best is None or agree > best[0]:
                    best = (agree, m)
            else:
                best = (0.0, m)
        if best is None:
            raise ValueError(f"{name}: no method could quantize it ({report.get('failed')})")
        chosen = Path(tmp) / f"{best[1]}.onnx"
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp_out:
            Path(tmp_out).write_bytes(chosen.read_bytes())
    report.update(method=best[1], file=str(out), bytes=out.stat().st_size, fp32_bytes=Path(src).stat().st_size)
    if val is not None:
        report["val_accuracy"] = report["candidates"][best[1]]
        report["val_agreement"] = report["agreement"][best[1]]
    return report
