"""Face detection (an OpenCV cascade) and the crop that turns a detected face into a FER2013 face.

The detector is OpenCV's LBP frontal-face cascade, shipped in fer_core/cascades/ (the
opencv-python-headless wheels carry only the Haar ones); OpenCV's Haar cascade, inside the wheel,
stays selectable. Nothing is downloaded. OpenCV does not document CascadeClassifier as
thread-safe, so each thread gets its own instance.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .preprocess import FACE_SIZE, ONE_FACE_REGIONS, resize_face

# The cascades `FaceDetector(cascade=...)` takes. On bench-detect's 300 photos (docs/performance.md)
# the LBP cascade at its settings below found more faces than the Haar one at its own (upright,
# tilted and partly covered alike), with fewer false ones, at a third of the time.
CASCADES = {
    "lbp": str(Path(__file__).resolve().parent / "cascades" / "lbpcascade_frontalface.xml"),
    "haar": cv2.data.haarcascades + "haarcascade_frontalface_default.xml",
}
CASCADE = "lbp"
# Each cascade's scale step and neighbours (how many overlapping hits make a face), chosen on
# bench-detect: the Haar cascade needs 6 neighbours (5 let textures such as hair and foliage through).
CASCADE_SETTINGS = {"lbp": (1.1, 3), "haar": (1.15, 6)}
# Detection runs on a copy whose longer side is at most DETECT_MAX_SIDE (boxes mapped back), starting
# at 30-px windows: the same box as full size at a third of the time (measurements: docs/performance.md).
DETECT_MAX_SIDE = 400
MIN_SEARCH_PIXELS = 30
SCALE_FACTOR, MIN_NEIGHBORS = CASCADE_SETTINGS[CASCADE]
MIN_FACE_FRACTION = 0.04  # ignore "faces" smaller than 4 % of the shorter side of the photo
MIN_FACE_PIXELS = 24  # the cascade's own window size, the floor of the small-faces search
# "Small faces" (group photos, crowds): a larger copy and a lower size floor find faces down to
# ~2 % of the longer side, at several times the cost; the app and the CLI offer it as an option.
SMALL_FACES_MAX_SIDE = 1280
SMALL_FACES_MIN_FRACTION = 0.015
CROP_MARGIN = 0.1  # cascade boxes are tighter than FER2013's framing (both cascades alike); widen each side by 10 %


class Box(NamedTuple):
    """A face box in original-image pixels."""

    x: int
    y: int
    w: int
    h: int


class FaceDetector:
    def __init__(
        self,
        scale_factor: float | None = None,
        min_neighbors: int | None = None,
        min_face_fraction: float = MIN_FACE_FRACTION,
        max_side: int = DETECT_MAX_SIDE,
        min_window: int = MIN_SEARCH_PIXELS,
        cascade: str = CASCADE,
    ) -> None:
        if cascade not in CASCADES:
            raise ValueError(f"unknown cascade {cascade!r}; choose one of {', '.join(CASCADES)}")
        self.cascade = cascade
        own_scale, own_neighbors = CASCADE_SETTINGS[cascade]  # what None stands for
        self.scale_factor = own_scale if scale_factor is None else scale_factor
        self.min_neighbors = own_neighbors if min_neighbors is None else min_neighbors
        self.min_face_fraction = min_face_fraction
        self.max_side = max_side
        self.min_window = min_window
        # A CascadeClassifier must not be used by two threads at once, and loading one parses a
        # ~50 KB-1 MB XML file. Streamlit runs every script run on a new thread, so a per-thread copy
        # would be loaded again on each click: instead a pool, one cascade per concurrent call.
        self._pool: queue.SimpleQueue[cv2.CascadeClassifier] = queue.SimpleQueue()
        self._cascade_file = CASCADES[cascade]
        self._pool.put(self._load())  # fail at construction, not on the first photo

    def _load(self) -> cv2.CascadeClassifier:
        cascade = cv2.CascadeClassifier(self._cascade_file)
        if cascade.empty():
            raise RuntimeError(
                f"the {self.cascade} face cascade did not load from {self._cascade_file}: "
                + (
                    "restore fer_core/cascades/ from the repository (`git checkout fer_core/cascades`)"
                    if self.cascade == "lbp"
                    else "install opencv-python-headless<5, which ships it"
                )
            )
        return cascade

    @contextmanager
    def _cascade(self) -> Iterator[cv2.CascadeClassifier]:
        try:
            cascade = self._pool.get_nowait()
        except queue.Empty:  # every pooled cascade is in use by another thread
            cascade = self._load()
        try:
            yield cascade
        finally:
            self._pool.put(cascade)

    def detect(self, gray: np.ndarray, small_faces: bool = False) -> list[Box]:
        """Faces in a (H, W) uint8 image, sorted left to right, as boxes in its pixels.

        `small_faces` searches a larger copy with a lower size floor (group photos; slower).
        """
        h, w = gray.shape
        max_side = max(self.max_side, SMALL_FACES_MAX_SIDE) if small_faces else self.max_side
        fraction = min(self.min_face_fraction, SMALL_FACES_MIN_FRACTION) if small_faces else self.min_face_fraction
        scale = min(1.0, max_side / max(h, w))
        small = (
            gray
            if scale == 1.0
            else cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        )
        small = cv2.equalizeHist(small)
        floor = MIN_FACE_PIXELS if small_faces else self.min_window
        min_side = max(floor, int(fraction * min(small.shape)))
        if min(small.shape) < min_side:
            return []
        with self._cascade() as cascade:
            found = cascade.detectMultiScale(
                small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
            )
        boxes = [
            Box(int(round(x / scale)), int(round(y / scale)), int(round(bw / scale)), int(round(bh / scale)))
            for x, y, bw, bh in (found if len(found) else [])
        ]
        return sorted(boxes, key=lambda b: (b.x, b.y))


def crop_face(gray: np.ndarray, box: Box, margin: float = CROP_MARGIN) -> np.ndarray:
    """The (48, 48) uint8 face a network sees: the box widened by `margin` on each side, made
    square, edge-padded where it leaves the photo, and resized like any FER2013 face.

    Only the square itself is copied and padded, never the whole photo."""
    side = max(box.w, box.h) * (1 + 2 * margin)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    h, w = gray.shape
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"face box {tuple(box)} lies outside the {w}x{h} image")
    inside = gray[iy0:iy1, ix0:ix1]
    left, top, right, bottom = ix0 - x0, iy0 - y0, x0 + s - ix1, y0 + s - iy1
    if left or top or right or bottom:
        inside = cv2.copyMakeBorder(inside, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return resize_face(inside)


def one_face(gray: np.ndarray, region: str = "centre") -> tuple[Box, np.ndarray]:
    """The image read as one face, never stretched: "centre" is its centred square (the sides of
    a wide photo are left out), "whole" is all of it, edge-padded to a square."""
    h, w = gray.shape
    if region == "centre":
        s = min(h, w)
        box = Box((w - s) // 2, (h - s) // 2, s, s)
        return box, resize_face(gray[box.y : box.y + s, box.x : box.x + s])
    if region == "whole":
        # Resized first, so its longer side is the face's, then edge-padded to the square: the
        # padding costs 48x48 pixels, never a max(h, w)-sided square of the photo
        scale = FACE_SIZE / max(h, w)
        fw, fh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(np.ascontiguousarray(gray), (fw, fh), interpolation=interp)
        top, left = (FACE_SIZE - fh) // 2, (FACE_SIZE - fw) // 2
        square = cv2.copyMakeBorder(small, top, FACE_SIZE - fh - top, left, FACE_SIZE - fw - left, cv2.BORDER_REPLICATE)
        return Box(0, 0, w, h), square
    raise ValueError(f"region must be one of {', '.join(ONE_FACE_REGIONS)}, not {region!r}")
