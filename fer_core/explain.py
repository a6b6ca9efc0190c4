"""Where did each model look? Occlusion sensitivity over the served (ONNX) models.

A gray square slides over the 48x48 face; for each position the model reads the face with that
square hidden, and the drop of the probability of the model's own answer (its top class on the
whole face) is credited to every pixel the square covered. A pixel's value is the mean drop over
the squares that covered it: higher = hiding it costs the model more confidence in its answer, so
the model relied on it; near 0 = no effect; negative = hiding it made the model surer.

The method needs nothing but the model's outputs, so it is the same for the three networks and
faithful by construction (it measures what hiding a region does, not a gradient's guess of it).
All hidden copies of a face go to each model in one batched call. The square is filled with the
face's own mean gray, so a dark face is not lit up by a light patch. The patch and stride were
chosen by measuring faithfulness against cost (docs/explain.md): `PATCH`, `STRIDE`.

No torch here: the app, the API and `python -m fer_core explain` run this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import FACE_SIZE, predict_proba

PATCH = 8  # side of the hidden square, pixels of the 48x48 face
STRIDE = 8  # its step: 6 positions a side, 36 hidden copies per face and model (results/bench_explain.json:
# as faithful as stride 4, at a third of its cost, ~0.35 s per face for the three models on two cores)
MAX_EXPLAINED_FACES = 6  # the app explains at most this many faces of a photo (the largest ones)


def positions(patch: int = PATCH, stride: int = STRIDE, size: int = FACE_SIZE) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the squares: a grid that covers every pixel (the last row and
    column of squares end at the face's edge)."""
    if not (1 <= patch <= size and 1 <= stride <= patch):
        raise ValueError(f"patch must be 1..{size} pixels and stride 1..patch; got patch {patch}, stride {stride}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return [(y, x) for y in starts for x in starts]


def occluded(face: np.ndarray, patch: int = PATCH, stride: int = STRIDE) -> np.ndarray:
    """(P, 48, 48) uint8: the face with each square of `positions` filled with the face's mean gray."""
    fill = np.uint8(round(float(face.mean())))
    corners = positions(patch, stride, face.shape[0])
    out = np.repeat(face[None], len(corners), axis=0)
    for i, (y, x) in enumerate(corners):
        out[i, y : y + patch, x : x + patch] = fill
    return out


def occlusion_map(
    model, face: np.ndarray, target: int | None = None, patch: int = PATCH, stride: int = STRIDE
) -> tuple[np.ndarray, int]:
    """One model's (48, 48) float32 map of a (48, 48) uint8 face, and the class it explains
    (`target`, default the model's answer on the whole face). `model` is a logits function with a
    `temperature` (OnnxModel): probabilities are the served, calibrated ones."""
    if face.shape != (FACE_SIZE, FACE_SIZE) or face.dtype != np.uint8:
        raise ValueError(f"expected a ({FACE_SIZE}, {FACE_SIZE}) uint8 face, got {face.shape} {face.dtype}")
    t, bend = float(getattr(model, "temperature", 1.0)), float(getattr(model, "bend", 0.0))
    hidden = occluded(face, patch, stride)
    probs = predict_proba(model, np.concatenate([face[None], hidden]), temperature=t, bend=bend)  # one batched call
    if target is None:
        target = int(np.argmax(probs[0]))
    drops = probs[0, target] - probs[1:, target]
    total = np.zeros((FACE_SIZE, FACE_SIZE), np.float64)
    count = np.zeros((FACE_SIZE, FACE_SIZE), np.float64)
    for d, (y, x) in zip(drops, positions(patch, stride), strict=True):
        total[y : y + patch, x : x + patch] += d
        count[y : y + patch, x : x + patch] += 1
    return (total / count).astype(np.float32), target


@dataclass(frozen=True)
class FaceMaps:
    """Each model's map of one face, and the class each map explains (the model's answer)."""

    maps: dict[str, np.ndarray]  # model name -> (48, 48) float32, higher = more important
    targets: dict[str, int]  # model name -> the label index the map explains

    @property
    def scale(self) -> float:
        """One colour scale for all the models' maps of this face: the largest drop among them."""
        return max(float(max(m.max(), 0.0)) for m in self.maps.values()) if self.maps else 0.0


def explain_face(models: Mapping[str, object], face: np.ndarray, patch: int = PATCH, stride: int = STRIDE) -> FaceMaps:
    """Every model's occlusion map of one (48, 48) uint8 face."""
    maps, targets = {}, {}
    for name, model in models.items():
        maps[name], targets[name] = occlusion_map(model, face, None, patch, stride)
    return FaceMaps(maps, targets)


def hide_top(face: np.ndarray, importance: np.ndarray, fraction: float) -> np.ndarray:
    """The face with its `fraction` most important pixels (by `importance`) set to its mean gray:
    the deletion test of a map's faithfulness."""
    k = int(round(fraction * face.size))
    out = face.copy()
    if k:
        idx = np.argsort(importance.ravel(), kind="stable")[::-1][:k]
        out.ravel()[idx] = np.uint8(round(float(face.mean())))
    return out


def overlay(face: np.ndarray, saliency: np.ndarray, scale: float, side: int = 192, alpha: float = 0.55) -> np.ndarray:
    """(side, side, 3) uint8 RGB: the face enlarged, under the map in the JET colour map on the scale
    [0, scale] (blue = hiding it changes nothing, red = the largest drop among the models compared)."""
    gray = cv2.resize(face, (side, side), interpolation=cv2.INTER_NEAREST)
    norm = np.clip(saliency / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(saliency)
    heat = cv2.resize((255 * norm).astype(np.uint8), (side, side), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    base = np.repeat(gray[:, :, None], 3, axis=2)
    return (alpha * colour + (1 - alpha) * base).round().astype(np.uint8)
