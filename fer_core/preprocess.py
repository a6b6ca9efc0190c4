"""The one preprocessing path, shared by training, evaluation, export, the CLI and the app.

A face is a (48, 48) uint8 gray array, exactly what a FER2013 image decodes to. Faces found in
photos are brought to that form by `resize_face`; the network input is made from such arrays by
`to_model_input` alone (pixel / 255, no other arithmetic: normalisation lives inside the
network), and test-time augmentation views are made by `tta_views`. No torch here: the app
runs without it.
"""

from __future__ import annotations

import cv2
import numpy as np

from .labels import NUM_CLASSES

FACE_SIZE = 48  # FER2013's face side; every network is fed this
TTA_MODES = ("none", "flip", "tencrop")
ONE_FACE_REGIONS = ("centre", "whole")  # an image read as one face: its centred square, or all of it padded
TENCROP_SIZE = 44  # the side of ten-crop's windows and of `train --crop` (FER2013 practice: 44 of 48)


def resize_face(gray: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """A gray uint8 image of any size -> (size, size) uint8, area-averaged when shrinking."""
    h, w = gray.shape[:2]
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(gray), (size, size), interpolation=interp)


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """(N, 48, 48) uint8 faces -> (N, 1, 48, 48) float32 in [0, 1], the input of every network."""
    if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE) or faces.dtype != np.uint8:
        raise ValueError(f"expected (N, {FACE_SIZE}, {FACE_SIZE}) uint8 faces, got {faces.shape} {faces.dtype}")
    return (faces.astype(np.float32) / np.float32(255.0))[:, None]


def check_tta(mode: str) -> str:
    """`mode` if it is one of TTA_MODES, else a ValueError that lists them."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


def tta_views(faces: np.ndarray, mode: str = "none") -> list[np.ndarray]:
    """Views of a batch of faces whose softmax outputs are averaged.

    none: the face; flip: the face and its mirror; tencrop: the five 44x44 windows of the face
    (four corners and the centre) and their mirrors. Each view is a whole 48x48 face shifted so
    that its centre 44x44 window is that crop (edge pixels repeat into the 2-px margin): a network
    trained on 44-px crops (`train --crop 44`) reads exactly the ten crops, and one trained on
    whole faces reads the face shifted by 2 px toward each corner.
    """
    check_tta(mode)
    if mode == "none":
        return [faces]
    if mode == "flip":
        return [faces, np.ascontiguousarray(faces[:, :, ::-1])]
    half = (FACE_SIZE - TENCROP_SIZE) // 2
    padded = np.pad(faces, ((0, 0), (half, half), (half, half)), mode="edge")
    views = []
    for y, x in ((0, 0), (0, 2 * half), (2 * half, 0), (2 * half, 2 * half), (half, half)):
        view = np.ascontiguousarray(padded[:, y : y + FACE_SIZE, x : x + FACE_SIZE])
        views += [view, np.ascontiguousarray(view[:, :, ::-1])]
    return views


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def calibrated_softmax(logits: np.ndarray, temperature: float = 1.0, bend: float = 0.0) -> np.ndarray:
    """A model's calibrated probabilities (fer_core.calibration): softmax(u / T - bend * u**2) with
    u = log_softmax(logits). bend = 0 is plain temperature scaling, softmax(logits / T). For T > 0
    and bend >= 0 the map is increasing in u (u <= 0), so the argmax never moves."""
    z = np.asarray(logits, dtype=np.float64)
    if bend == 0.0:
        return softmax(z / temperature)
    z = z - z.max(axis=-1, keepdims=True)
    u = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return softmax(u / temperature - bend * u * u)


def predict_proba(
    logits_fn, faces: np.ndarray, tta: str = "none", batch_size: int = 256, temperature: float = 1.0, bend: float = 0.0
) -> np.ndarray:
    """Softmax probabilities (N, 7) of `logits_fn` over faces, averaged over TTA views, then
    calibrated by `temperature` and `bend` (a model's calibration, `calibrated_softmax`).

    `logits_fn` maps a (B, 1, 48, 48) float32 array to (B, 7) logits: an ONNX Runtime session or a
    torch module wrapped the same way. This is the one inference loop of the project.
    """
    return predict_proba_at(logits_fn, faces, ((temperature, bend),), tta, batch_size)[0]


def predict_proba_at(
    logits_fn,
    faces: np.ndarray,
    calibrations: tuple[tuple[float, float], ...],
    tta: str = "none",
    batch_size: int = 256,
) -> list[np.ndarray]:
    """`predict_proba` at each of `calibrations` ((temperature, bend) pairs), from one pass of the
    network (evaluation records the raw probabilities, (1, 0), beside the calibrated ones)."""
    out: list[list[np.ndarray]] = [[] for _ in calibrations]
    for start in range(0, len(faces), batch_size):
        chunk = faces[start : start + batch_size]
        views = [np.asarray(logits_fn(to_model_input(v)), dtype=np.float64) for v in tta_views(chunk, tta)]
        mean = sum(softmax(z) for z in views) / len(views)  # the model's reading of the face, all views
        for i, (t, bend) in enumerate(calibrations):
            # calibrated after the views are averaged: an increasing map of one distribution keeps
            # its argmax, so calibration never changes a model's answer, with TTA or without
            out[i].append(
                mean if (t, bend) == (1.0, 0.0) else calibrated_softmax(np.log(np.clip(mean, 1e-12, None)), t, bend)
            )
    return [np.concatenate(o) if o else np.zeros((0, NUM_CLASSES)) for o in out]
