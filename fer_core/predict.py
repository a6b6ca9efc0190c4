"""The Python API: photos in, typed per-face predictions of every model and their ensemble out.

    from fer_core import Predictor
    predictor = Predictor.load()                # the shipped ONNX weights in weights/
    for face in predictor.predict("photo.jpg"):  # path, bytes, PIL image or numpy array
        print(face.box, face.label, face.score, face.agree)

Runs on ONNX Runtime and OpenCV; never imports torch.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from . import csvsafe
from .ensemble import NAME as ENSEMBLE_NAME
from .ensemble import combine
from .errors import WeightsError
from .explain import MAX_EXPLAINED_FACES, PATCH, STRIDE, FaceMaps, explain_face
from .faces import Box, FaceDetector, crop_face, one_face
from .imageio import FORMATS, ImageSource, load_image, to_gray
from .labels import EMOTIONS
from .preprocess import check_tta, predict_proba
from .registry import list_models
from .serving import DEFAULT_WEIGHTS_DIR, OnnxModel, ensemble_temperature, load_models, weights_path
from .video import DEFAULT_FPS, MAX_SECONDS, MAX_VIDEO_BYTES, Tracker, sample_frames, scaled_box

MAX_FACES = 20  # a group photo beyond this is cut to the 20 largest faces (and the caller told)


def model_workers() -> int:
    """One per core, at least one: how many model calls, and how many photos, run at once by default."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, what each model read, and the ensemble (mean of the softmaxes)."""

    box: Box  # x, y, w, h in original-image pixels (after EXIF rotation)
    probabilities: dict[str, list[float]]  # model name -> probabilities in `labels` order
    ensemble: list[float]
    labels: tuple[str, ...] = EMOTIONS
    face: np.ndarray | None = field(default=None, repr=False, compare=False)  # the 48x48 input

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.ensemble))]

    @property
    def score(self) -> float:
        return float(max(self.ensemble))

    def top(self, model: str) -> tuple[str, float]:
        p = self.probabilities[model]
        i = int(np.argmax(p))
        return self.labels[i], float(p[i])

    @property
    def agree(self) -> bool:
        """Do all models name the same top expression?"""
        return len({self.top(m)[0] for m in self.probabilities}) == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box._asdict(),
            "label": self.label,
            "score": self.score,
            "agree": self.agree,
            "labels": list(self.labels),
            ENSEMBLE_NAME: list(self.ensemble),
            "models": {
                m: {"label": self.top(m)[0], "score": self.top(m)[1], "probabilities": list(p)}
                for m, p in self.probabilities.items()
            },
        }


@dataclass(frozen=True)
class Analysis:
    """Everything one photo gave: the upright image, the faces, and what it cost."""

    image: Image.Image
    faces: list[FacePrediction]
    detected: bool  # faces come from the detector (False: the image was read as one face)
    faces_found: int  # faces the detector found, before the MAX_FACES cap
    timings_ms: dict[str, float]
    tta: str = "none"  # the views each face was read in (preprocess.TTA_MODES): "flip" adds its mirror
    temperatures: dict[str, float] = field(default_factory=dict)  # the calibration applied (Predictor.temperatures)

    @property
    def truncated(self) -> bool:
        return self.faces_found > len(self.faces)


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame of a clip: when it is (seconds from the start), its faces (boxes in the
    clip's pixels) and each face's track id (the same person keeps one id across frames)."""

    index: int
    time_s: float
    faces: list[FacePrediction]
    tracks: list[int]
    seconds: float  # what reading this frame cost (decode excluded)
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # the frame as analysed, RGB
    scale: float = 1.0  # the clip's pixels per pixel of `image` (frames are scaled down before detection)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time_s": self.time_s,
            "faces": [{"track": t, **f.to_dict()} for t, f in zip(self.tracks, self.faces, strict=True)],
        }


@dataclass(frozen=True)
class Explanation:
    """Where each model looked: the analysis, and per face (in the analysis' order) each model's
    occlusion map (fer_core.explain), or None for a face beyond `max_faces` (the largest are explained)."""

    analysis: Analysis
    maps: list[FaceMaps | None]
    seconds: float  # the maps' cost, all faces and models (the analysis' own time is in its timings)

    @property
    def explained(self) -> int:
        return sum(m is not None for m in self.maps)


class Predictor:
    """All loaded models plus the face detector; safe to share between threads."""

    def __init__(
        self,
        models: dict[str, OnnxModel],
        detector: FaceDetector | None = None,
        max_faces: int = MAX_FACES,
        max_concurrent: int | None = None,
        workers: int | None = None,
    ):
        if not models:
            raise WeightsError("a Predictor needs at least one model")
        self.models = models
        # Each model's probabilities are calibrated (OnnxModel.temperature); the ensemble averages
        # them and applies its own temperature, fitted for exactly these files (1.0 for any other set).
        self.ensemble_temperature = ensemble_temperature(models)
        self.detector = detector or FaceDetector()
        self.max_faces = max_faces
        # Shared by every session of the app: at most this many photos are decoded and analysed at
        # once (one per core by default), so 20 simultaneous uploads of large photos cost the memory
        # of a few, not of 20; the others wait their turn. The work is CPU-bound, so no speed is lost.
        self.max_concurrent = max(1, max_concurrent or model_workers())
        self._slots = threading.BoundedSemaphore(self.max_concurrent)
        # The models of a photo run at once, on one pool shared by every analysis (so at most
        # `workers` model calls run at a time, whatever the number of sessions; 1: one after the
        # other). Measured by `python -m fer_core bench` (results/bench_app.json, docs/performance.md).
        self.workers = max(1, min(len(models), workers or model_workers()))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fer-models")

    @classmethod
    def load(
        cls,
        weights_dir: str | os.PathLike | None = None,
        models: list[str] | None = None,
        threads: int | None = None,
        max_faces: int = MAX_FACES,
    ) -> Predictor:
        """Load `models` (default: every registered model whose ONNX file is in weights_dir)."""
        weights_dir = weights_dir or DEFAULT_WEIGHTS_DIR
        names = models or [m for m in list_models() if weights_path(m, weights_dir).is_file()]
        if not names:
            raise WeightsError(
                f"no model weights in {weights_dir} (expected {', '.join(m + '.onnx' for m in list_models())}); "
                "train and export them, or use the repository's weights/ folder"
            )
        return cls(load_models(names, weights_dir, threads), max_faces=max_faces)

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    @property
    def temperatures(self) -> dict[str, float]:
        """Each model's temperature and the ensemble's (1.0: uncalibrated), as every output applies them."""
        temps = {m: float(model.temperature) for m, model in self.models.items()}
        return {**temps, ENSEMBLE_NAME: self.ensemble_temperature}

    @property
    def calibrated(self) -> bool:
        return any(t != 1.0 for t in self.temperatures.values()) or any(m.bend for m in self.models.values())

    def predict(
        self,
        image: ImageSource,
        detect: bool = True,
        channel_order: str = "RGB",
        small_faces: bool = False,
        region: str = "centre",
        tta: str = "none",
    ) -> list[FacePrediction]:
        """Every face in `image` (or, with detect=False, the image as one face: `region` "centre"
        reads its centred square, "whole" all of it padded to a square).

        `small_faces` also finds faces down to ~2 % of the photo's longer side (group photos), at
        several times the detection cost. `tta="flip"` averages each model's reading of a face with
        its reading of the mirrored face: more accurate (results/*_flip.json), twice the model time.
        """
        return self.analyze(image, detect, channel_order, small_faces, region=region, tta=tta).faces

    def analyze(
        self,
        image: ImageSource,
        detect: bool = True,
        channel_order: str = "RGB",
        small_faces: bool = False,
        formats: tuple[str, ...] = FORMATS,
        region: str = "centre",
        tta: str = "none",
    ) -> Analysis:
        """The upright image, every face with each model's probabilities and the ensemble, and timings
        (which leave out any wait for a free slot, see `max_concurrent`). Bytes and files are parsed
        only in `formats` (the app passes imageio.WEB_FORMATS). With detect=False the image is one
        face: `region` "centre" reads its centred square, "whole" all of it padded to a square.
        `tta` is a test-time augmentation of `preprocess.TTA_MODES`, as in `python -m fer_core evaluate`."""
        check_tta(tta)  # before the slot and the decode: a wrong argument costs nothing
        with self._slots:
            return self._analyze(image, detect, channel_order, small_faces, formats, region, tta)

    def analyze_video(
        self,
        source: bytes | str | os.PathLike,
        fps: float = DEFAULT_FPS,
        small_faces: bool = False,
        tta: str = "none",
        max_seconds: float = MAX_SECONDS,
        max_bytes: int = MAX_VIDEO_BYTES,
        keep_images: bool = False,
    ) -> Iterator[VideoFrame]:
        """A clip (bytes or a path), frame by frame at `fps` samples per second of clip time: each
        sampled frame read like a photo (`analyze`), its faces linked into tracks (fer_core.video).
        A generator: frames are decoded and read one at a time, so memory stays flat over any
        length. An unreadable or too long clip raises `InvalidVideoError` (a ValueError), at the
        start or, for damage found later, after the frames before it were yielded."""
        check_tta(tta)
        tracker = Tracker()
        for frame in sample_frames(source, fps, max_seconds, max_bytes):
            t0 = time.perf_counter()
            analysis = self.analyze(frame.image, small_faces=small_faces, tta=tta)
            faces = [replace(f, box=scaled_box(f.box, frame.scale)) for f in analysis.faces]
            tracks = tracker.update([f.box for f in faces], frame.time_s)
            image = frame.image if keep_images else None
            yield VideoFrame(frame.index, frame.time_s, faces, tracks, time.perf_counter() - t0, image, frame.scale)

    def explain(
        self,
        image: ImageSource,
        detect: bool = True,
        small_faces: bool = False,
        formats: tuple[str, ...] = FORMATS,
        region: str = "centre",
        max_faces: int = MAX_EXPLAINED_FACES,
        patch: int = PATCH,
        stride: int = STRIDE,
    ) -> Explanation:
        """`analyze` (single view), then each model's occlusion map of each face: a (48, 48) float32
        array per model, higher = hiding that region lowers the model's confidence in its answer more."""
        return self.explain_analysis(
            self.analyze(image, detect, small_faces=small_faces, formats=formats, region=region),
            max_faces,
            patch,
            stride,
        )

    def explain_analysis(
        self, analysis: Analysis, max_faces: int = MAX_EXPLAINED_FACES, patch: int = PATCH, stride: int = STRIDE
    ) -> Explanation:
        """The maps of an analysis' faces (the `max_faces` largest; None for the others). Each face costs
        one batched call per model of its hidden copies (36 at the default patch and stride): ~0.35 s
        for the three shipped models on two cores (results/bench_explain.json)."""
        if max_faces < 0:
            raise ValueError("max_faces must be 0 or more")
        order = sorted(range(len(analysis.faces)), key=lambda i: -analysis.faces[i].box.w * analysis.faces[i].box.h)
        chosen = set(order[:max_faces])
        t0 = time.perf_counter()
        maps: list[FaceMaps | None] = []
        with self._slots:  # as costly as an analysis: shares its bound on concurrent work
            for i, face in enumerate(analysis.faces):
                if i not in chosen or face.face is None:
                    maps.append(None)
                else:
                    maps.append(explain_face(self.models, face.face, patch, stride))
        return Explanation(analysis, maps, time.perf_counter() - t0)

    def _read_faces(self, faces: np.ndarray, tta: str, timings: dict[str, float]) -> dict[str, np.ndarray]:
        """Each model's calibrated probabilities of `faces`, the models run at once on the shared
        pool; each model's own time goes into `timings`."""

        def read(item: tuple[str, OnnxModel]) -> np.ndarray:
            name, model = item
            t = time.perf_counter()
            p = predict_proba(model, faces, tta=tta, temperature=model.temperature, bend=model.bend)
            timings[name] = (time.perf_counter() - t) * 1000
            return p

        if not len(faces):
            timings.update({name: 0.0 for name in self.models})
            return {name: np.zeros((0, len(EMOTIONS))) for name in self.models}
        return dict(zip(self.models, self._pool.map(read, self.models.items()), strict=True))

    def _analyze(
        self,
        image: ImageSource,
        detect: bool,
        channel_order: str,
        small_faces: bool,
        formats: tuple[str, ...],
        region: str,
        tta: str,
    ) -> Analysis:
        t0 = time.perf_counter()
        im = load_image(image, channel_order, formats)
        gray = to_gray(im)
        t1 = time.perf_counter()
        timings = {"decode": (t1 - t0) * 1000}
        if detect:
            boxes = self.detector.detect(gray, small_faces=small_faces)
            found = len(boxes)
            boxes = sorted(sorted(boxes, key=lambda b: -b.w * b.h)[: self.max_faces], key=lambda b: (b.x, b.y))
            faces = np.stack([crop_face(gray, b) for b in boxes]) if boxes else np.zeros((0, 48, 48), np.uint8)
        else:
            box, face = one_face(gray, region)
            boxes, found, faces = [box], 1, face[None]
        t2 = time.perf_counter()
        timings["detect"] = (t2 - t1) * 1000
        probs = self._read_faces(faces, tta, timings)
        timings["models"] = (time.perf_counter() - t2) * 1000
        ensemble = combine(probs.values(), self.ensemble_temperature) if len(faces) else np.zeros((0, len(EMOTIONS)))
        labels = tuple(next(iter(self.models.values())).labels)  # from the weights (checked == EMOTIONS)
        results = [
            FacePrediction(
                box=b,
                probabilities={m: [float(v) for v in p[i]] for m, p in probs.items()},
                ensemble=[float(v) for v in ensemble[i]],
                labels=labels,
                face=faces[i],
            )
            for i, b in enumerate(boxes)
        ]
        timings["total"] = (time.perf_counter() - t0) * 1000
        return Analysis(im, results, detect, found, timings, tta, self.temperatures)


# --- exports: what the app's download buttons write ----------------------------------------------

EXPORT_SCHEMA = "fer_core.faces/1"
VIDEO_EXPORT_SCHEMA = "fer_core.video/1"


def export_json(results: Sequence[tuple[str, Analysis]]) -> bytes:
    """Every analysed photo as one JSON document: boxes, each model's probabilities, the ensemble."""
    images = [
        {
            "source": source,
            "width": analysis.image.width,
            "height": analysis.image.height,
            "detected": analysis.detected,
            "faces_found": analysis.faces_found,
            "truncated": analysis.truncated,
            "tta": analysis.tta,
            "temperatures": analysis.temperatures,
            "timings_ms": {k: round(v, 3) for k, v in analysis.timings_ms.items()},
            "faces": [{"face": i + 1, **face.to_dict()} for i, face in enumerate(analysis.faces)],
        }
        for source, analysis in results
    ]
    return json.dumps({"schema": EXPORT_SCHEMA, "images": images}, indent=2).encode()


def csv_header(models: Sequence[str]) -> list[str]:
    """The one CSV shape (the app's downloads and `predict --format csv`): one row per face. For a
    clip, one row per face per sampled frame: `time_s` (seconds from the start) and `track` (the same
    person keeps one number) are filled; for a photo they are empty."""
    cols = ["file", "face", "time_s", "track", "x", "y", "w", "h", "label", "score", "agree"]
    for m in models:
        cols += [f"{m}_label", f"{m}_score"]
    return cols + [f"p_{e}" for e in EMOTIONS] + ["error"]


def csv_rows(
    source: str,
    faces: Sequence[FacePrediction],
    models: Sequence[str],
    time_s: float | None = None,
    tracks: Sequence[int] | None = None,
) -> list[list[Any]]:
    """`source`'s rows under `csv_header(models)`: one per face (numbered as the boxes are: face 1
    is box 1), with the ensemble's reading, each model's, and the ensemble's probabilities; one row
    with empty face columns if no face was found, so every image (or sampled frame) read is in the
    file. A clip's frame gives its `time_s` and each face's track."""
    width = len(csv_header(models))
    when = "" if time_s is None else f"{time_s:.3f}"
    if not faces:
        return [[source, "", when] + [""] * (width - 3)]
    rows = []
    for i, face in enumerate(faces, start=1):
        if list(face.labels) != list(EMOTIONS):
            raise ValueError(f"face {i} of {source}: labels {list(face.labels)} are not {list(EMOTIONS)}")
        b = face.box
        track = "" if tracks is None else tracks[i - 1]
        row: list[Any] = [source, i, when, track, b.x, b.y, b.w, b.h, face.label, f"{face.score:.4f}", face.agree]
        for m in models:
            label, score = face.top(m)
            row += [label, f"{score:.4f}"]
        rows.append(row + [f"{p:.4f}" for p in face.ensemble] + [""])
    return rows


def video_csv_rows(source: str, frames: Sequence[VideoFrame], models: Sequence[str]) -> list[list[Any]]:
    """A clip's rows under `csv_header(models)`: one per face per sampled frame (one with empty face
    columns for a frame without faces), with each row's time and track."""
    return [row for f in frames for row in csv_rows(source, f.faces, models, f.time_s, f.tracks)]


def video_csv(source: str, frames: Sequence[VideoFrame], models: Sequence[str]) -> bytes:
    """A clip's frames in the one CSV shape: a row per face per sampled frame (the app's download)."""
    buf = io.StringIO()
    writer = csvsafe.writer(buf)
    writer.writerow(csv_header(models))
    writer.writerows(video_csv_rows(source, frames, models))
    return buf.getvalue().encode()


def video_json(source: str, frames: Sequence[VideoFrame], fps: float, tta: str = "none") -> bytes:
    """A clip's frames as one JSON document: every face of every sampled frame, with its track."""
    doc = {
        "schema": VIDEO_EXPORT_SCHEMA,
        "file": source,
        "fps": fps,
        "tta": tta,
        "frames": [f.to_dict() for f in frames],
    }
    return json.dumps(doc, indent=1).encode()


def export_csv(results: Sequence[tuple[str, Analysis]]) -> bytes:
    """Every analysed photo in the one CSV shape (`csv_header`): a row per face. Text cells a
    spreadsheet would run as a formula get a leading `'` (fer_core.csvsafe)."""
    models: list[str] = next((list(f.probabilities) for _, a in results for f in a.faces), [])
    buf = io.StringIO()
    writer = csvsafe.writer(buf)  # a file named `=cmd|calc.jpg` stays text in a spreadsheet
    writer.writerow(csv_header(models))
    for source, analysis in results:
        writer.writerows(csv_rows(source, analysis.faces, models))
    return buf.getvalue().encode()
