"""ONNX Runtime inference for exported models. No torch: this is what the app and the API run.

An exported file carries its own description in the ONNX metadata key "fer_core" (model name,
labels, registry spec, how its checkpoint was selected, training history), so a weights file
alone says what it is; labels are read from it and checked against EMOTIONS.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import CalibrationError, load_calibration
from .errors import WeightsError
from .labels import EMOTIONS
from .provenance import sha256_file
from .registry import get_spec, list_models

META_KEY = "fer_core"
ONNX_FORMAT = "fer_core.onnx/1"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def release_freed_memory() -> None:
    """Hand heap memory freed while a session was built back to the OS (glibc only).

    Building a session parses the whole ONNX file and copies its weights; the parse buffers are
    freed but glibc keeps them, so the process stays at twice the models' size. Measured with the
    three models loaded: 550 MB resident before, 293 MB after.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, Windows, musl): nothing to do


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def card_path(onnx_path: str | os.PathLike) -> Path:
    """NAME.card.json beside NAME.onnx: the model card, which records each weights file's sha256."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.card.json")


def recorded_sha256(onnx_path: str | os.PathLike) -> str | None:
    """The sha256 the card beside `onnx_path` records for it; None where there is no card."""
    card = card_path(onnx_path)
    if not card.is_file():
        return None
    try:
        entry = json.loads(card.read_text(encoding="utf-8"))["files"]["onnx"]
        if entry["file"] != Path(onnx_path).name:
            raise ValueError(f"it describes {entry['file']!r}")
        return str(entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise WeightsError(
            f"{card} is not a readable model card ({exc}); restore it (`git checkout {card.parent.name}/`) "
            f"or write it again with `python -m fer_core card --model {Path(onnx_path).stem}`"
        ) from None


class OnnxModel:
    """One exported network: `model(x)` maps (B, 1, 48, 48) float32 in [0, 1] to (B, 7) logits;
    `model.temperature` is what its logits are divided by before the softmax (fer_core.calibration).

    ONNX Runtime's `InferenceSession.run` is thread-safe, so one instance serves every app
    session and thread.

    With `expected` (the registry name the file is loaded as), the file must say it holds that
    model, and where a model card lies beside it, its sha256 must be the one the card records:
    a vgg16.onnx copied over resnet18.onnx, or a few flipped bytes, is a WeightsError, never a
    silently different model. Hashing the three shipped files costs ~0.1 s.
    """

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, expected: str | None = None, verify: bool = True
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"no ONNX weights at {self.path}; run `python -m fer_core export` first")
        # Hashed apart from the parse: a session built from the bytes in memory keeps a second copy
        # of the weights (466 MB resident with the three models, against 290 MB built from the path)
        self._sha256 = sha256_file(self.path)
        recorded = recorded_sha256(self.path) if verify else None
        if recorded is not None and recorded != self._sha256:
            raise WeightsError(
                f"{self.path} is not the file its card records (sha256 {self._sha256[:12]}..., the card says "
                f"{recorded[:12]}...): it is damaged or was replaced. Restore it (`git checkout "
                f"{self.path.parent.name}/`), or if you exported it yourself, write its card again with "
                f"`python -m fer_core card --model {self.path.stem}`"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads must not spin: the app runs three sessions and the face detector one
        # after another, and spinning threads of one starve the next (measured on the astronaut
        # photo, 2 cores: VGG16 8.6 ms instead of 29.8 ms, the whole photo 59 ms instead of 120 ms).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:
            raise WeightsError(f"{self.path} is not a loadable ONNX model: {exc}") from exc
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise WeightsError(f"{self.path} has no '{META_KEY}' metadata; export it with `python -m fer_core export`")
        try:
            self.meta: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{self.path}: its '{META_KEY}' metadata is not valid JSON ({exc})") from None
        if not isinstance(self.meta, dict) or not {"model", "labels"} <= set(self.meta):
            raise WeightsError(f"{self.path}: its '{META_KEY}' metadata lacks the model name or labels")
        if self.meta.get("format") != ONNX_FORMAT:
            raise WeightsError(f"{self.path}: metadata format {self.meta.get('format')!r}, expected {ONNX_FORMAT!r}")
        self.name: str = self.meta["model"]
        if expected is not None and self.name != expected:
            raise WeightsError(
                f"{self.path} holds the {self.name} network (its metadata says so), not {expected}: a file was "
                f"copied over another. Restore it (`git checkout {self.path.parent.name}/`) or export {expected} again"
            )
        self.spec = get_spec(self.name)
        self.labels: list[str] = list(self.meta["labels"])
        if self.labels != list(EMOTIONS):
            raise WeightsError(f"{self.path} predicts {self.labels}, this package uses {list(EMOTIONS)}")
        self.input_name = self.session.get_inputs()[0].name
        # The temperature fitted on PublicTest for exactly this file (weights/calibration.json);
        # 1.0 (raw softmax) for weights no temperature was fitted for.
        try:
            calibration = load_calibration(self.path.parent)
            self.temperature = calibration.temperature(self.name, self._sha256)
            self.bend = calibration.bend(self.name, self._sha256)
        except CalibrationError as exc:
            raise WeightsError(str(exc)) from None
        release_freed_memory()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    @property
    def precision(self) -> str:
        """ "int8" for a file made by `python -m fer_core quantize`, else "fp32" (what `export` writes)."""
        return str(self.meta.get("precision", "fp32"))

    @property
    def sha256(self) -> str:
        return self._sha256

    def describe(self) -> dict[str, Any]:
        """Plain-type identity of the weights, stored in every results file."""
        return {
            "model": self.name,
            "file": self.path.name,
            "sha256": self.sha256,
            "bytes": self.path.stat().st_size,
            "parameters": int(self.meta.get("parameters", 0)),
            "precision": self.precision,
            "checkpoint_sha256": self.meta.get("checkpoint_sha256"),
            "temperature": self.temperature,
            "bend": self.bend,
        }


def weights_path(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    get_spec(name)
    return Path(weights_dir or DEFAULT_WEIGHTS_DIR) / f"{name}.onnx"


def load_models(
    names: list[str] | None = None, weights_dir: str | os.PathLike | None = None, threads: int | None = None
) -> dict[str, OnnxModel]:
    """Load the ONNX weights of `names` (default: every registered model), in registry order."""
    names = names or list_models()
    return {name: OnnxModel(weights_path(name, weights_dir), threads, expected=name) for name in names}


def ensemble_temperature(models: dict[str, Any]) -> float:
    """The ensemble temperature fitted for exactly these models' files (all ONNX, in one folder), else 1.0."""
    if len(models) < 2 or not all(isinstance(m, OnnxModel) for m in models.values()):
        return 1.0
    folders = {m.path.parent.resolve() for m in models.values()}
    if len(folders) != 1:
        return 1.0
    try:
        calibration = load_calibration(folders.pop())
    except CalibrationError as exc:
        raise WeightsError(str(exc)) from None
    return calibration.ensemble_temperature({name: m.sha256 for name, m in models.items()})
