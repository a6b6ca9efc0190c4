"""Face detection settings side by side: faces found, false faces and cost -> results/bench_detect.json

    python -m fer_core bench-detect --data ../shared/fer2013            # 300 photos, every setting

Detection quality is measured on photos made here, none stored: PublicTest (`val/`) faces of the
user's FER2013 copy, scaled to 56-220 px (9-34 % of the photo's 640-px side; the default search
is meant to find faces from 7.5 %), pasted onto 640x480 crops of scikit-image's face-free sample
pictures (coffee, rocket, coins, text, brick, grass, ...: real clutter), one to three per photo.
A face is pasted as it is (upright), turned by 8-15 degrees (tilted), or with a band over its
eyes or its mouth (partly covered), in equal shares. The same face-free pictures, whole, count
false faces. The real photos the tests and the app's gallery use (the astronaut, the generated
group of four and tilted photo, scikit-image's cameraman) are read by every setting too.

A detection finds a face when its centre lies inside the face's square and its side is 0.35-1.3
times the square's (cascade boxes are tighter than FER2013's framing); every other detection is a
false face. Cost is the median time of `FaceDetector.detect` on each photo, so it is only
comparable within one run on a machine that does nothing else (scikit-image is a dev requirement).
"""

from __future__ import annotations

import io
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .faces import CASCADE, DETECT_MAX_SIDE, MIN_NEIGHBORS, MIN_SEARCH_PIXELS, SCALE_FACTOR, Box, FaceDetector
from .imageio import to_gray
from .provenance import utc_timestamp
from .samples import SAMPLE_FACES, sample_photo

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "bench_detect.json"
SCHEMA = "fer_core.bench_detect/1"
WIDTH, HEIGHT = 640, 480
FACE_SIDES = (56, 220)  # pasted face side range, px
KINDS = ("upright", "tilted", "covered")
BACKGROUNDS = (
    "coffee", "rocket", "coins", "text", "page", "brick", "grass", "gravel", "moon", "horse",
    "hubble_deep_field", "immunohistochemistry", "retina", "clock", "logo", "chelsea",
)  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One way to run the cascade (fer_core.faces.FaceDetector's arguments)."""

    max_side: int
    scale_factor: float
    min_window: int
    min_neighbors: int = MIN_NEIGHBORS
    cascade: str = CASCADE

    @property
    def label(self) -> str:
        return (
            f"{self.cascade.upper()}, {self.max_side} px copy, x{self.scale_factor} steps, {self.min_window} px first "
            f"window, {self.min_neighbors} neighbours"
        )

    def detector(self) -> FaceDetector:
        return FaceDetector(
            self.scale_factor,
            self.min_neighbors,
            max_side=self.max_side,
            min_window=self.min_window,
            cascade=self.cascade,
        )


SHIPPED = Setting(DETECT_MAX_SIDE, SCALE_FACTOR, MIN_SEARCH_PIXELS, MIN_NEIGHBORS, CASCADE)
CANDIDATES = (
    Setting(400, 1.1, 30, 3, "lbp"),
    Setting(400, 1.15, 30, 3, "lbp"),
    Setting(400, 1.1, 30, 4, "lbp"),
    Setting(400, 1.1, 30, 6, "lbp"),
    Setting(400, 1.15, 30, 6, "haar"),  # the setting shipped with the Haar cascade before
    Setting(400, 1.2, 30, 6, "haar"),
    Setting(320, 1.15, 24, 6, "haar"),
    Setting(400, 1.2, 30, 5, "haar"),
    Setting(400, 1.1, 30, 6, "haar"),
    Setting(400, 1.15, 30, 3, "haar"),
)


def backgrounds() -> list[np.ndarray]:
    """scikit-image's face-free sample pictures, gray, each cut/scaled to cover 640x480."""
    from skimage import data  # dev requirement

    out = []
    for name in BACKGROUNDS:
        gray = to_gray_array(getattr(data, name)())
        h, w = gray.shape
        scale = max(WIDTH / w, HEIGHT / h)
        if scale > 1:
            gray = cv2.resize(gray, (round(w * scale) + 1, round(h * scale) + 1), interpolation=cv2.INTER_CUBIC)
        h, w = gray.shape
        y, x = (h - HEIGHT) // 2, (w - WIDTH) // 2
        out.append(np.ascontiguousarray(gray[y : y + HEIGHT, x : x + WIDTH]))
    return out


def to_gray_array(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    return image


def _face_patch(face: np.ndarray, side: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    patch = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    if kind == "tilted":
        angle = float(rng.uniform(8, 15) * rng.choice([-1, 1]))
        m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        patch = cv2.warpAffine(patch, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    elif kind == "covered":
        # a band over the eyes (sunglasses) or over the mouth (a hand, a mask)
        band = (0.28, 0.50) if rng.random() < 0.5 else (0.66, 0.92)
        y0, y1 = round(band[0] * side), round(band[1] * side)
        patch = patch.copy()
        patch[y0:y1, round(0.12 * side) : round(0.88 * side)] = int(rng.integers(10, 90))
    return patch


def make_photos(faces: np.ndarray, n: int, seed: int = 0, bgs: list[np.ndarray] | None = None) -> list[dict[str, Any]]:
    """`n` 640x480 gray photos, each with 1-3 of `faces` ((N, 48, 48) uint8) pasted on a background
    (`bgs`, default `backgrounds()`): [{"image", "faces": [(x, y, side, kind)]}]."""
    rng = np.random.default_rng(seed)
    bgs = bgs if bgs is not None else backgrounds()
    photos = []
    for i in range(n):
        canvas = bgs[i % len(bgs)].copy()
        placed: list[tuple[int, int, int, str]] = []
        for _ in range(int(rng.integers(1, 4))):
            side = int(rng.integers(FACE_SIDES[0], FACE_SIDES[1] + 1))
            for _try in range(20):
                x, y = int(rng.integers(0, WIDTH - side)), int(rng.integers(0, HEIGHT - side))
                if all(x + side <= px or px + ps <= x or y + side <= py or py + ps <= y for px, py, ps, _ in placed):
                    break
            else:
                continue
            kind = KINDS[int(rng.integers(0, 3))]
            canvas[y : y + side, x : x + side] = _face_patch(faces[int(rng.integers(0, len(faces)))], side, kind, rng)
            placed.append((x, y, side, kind))
        photos.append({"image": canvas, "faces": placed})
    return photos


def match(found: list[Box], truth: list[tuple[int, int, int, str]]) -> tuple[list[bool], int]:
    """Which true faces were found, and how many detections found none (false faces)."""
    hit = [False] * len(truth)
    false = 0
    for b in found:
        cx, cy = b.x + b.w / 2, b.y + b.h / 2
        for j, (x, y, side, _) in enumerate(truth):
            if not hit[j] and x <= cx <= x + side and y <= cy <= y + side and 0.35 * side <= b.w <= 1.3 * side:
                hit[j] = True
                break
        else:
            false += 1
    return hit, false


def real_photos() -> dict[str, tuple[np.ndarray, int]]:
    """The real photos every setting must keep reading: gray image and its number of faces."""
    from PIL import Image

    out = {key: (to_gray(Image.open(io.BytesIO(sample_photo(key)))), faces) for key, faces in SAMPLE_FACES.items()}
    try:
        from skimage import data

        out["cameraman (scikit-image)"] = (to_gray_array(data.camera()), 1)
    except ImportError:
        pass
    return out


def measure(setting: Setting, photos: list[dict[str, Any]], negatives: list[np.ndarray], real: dict) -> dict[str, Any]:
    detector = setting.detector()
    found_by_kind = {k: [0, 0] for k in KINDS}
    false_on_faces, ms = 0, []
    for photo in photos:
        detector.detect(photo["image"])  # warm
        t = time.perf_counter()
        boxes = detector.detect(photo["image"])
        ms.append((time.perf_counter() - t) * 1000)
        hit, false = match(boxes, photo["faces"])
        false_on_faces += false
        for h, (*_, kind) in zip(hit, photo["faces"], strict=True):
            found_by_kind[kind][0] += h
            found_by_kind[kind][1] += 1
    found = sum(v[0] for v in found_by_kind.values())
    total = sum(v[1] for v in found_by_kind.values())
    return {
        "setting": asdict(setting),
        "label": setting.label,
        "recall": found / total,
        "recall_by_kind": {k: v[0] / v[1] for k, v in found_by_kind.items() if v[1]},
        "faces": total,
        "false_faces_on_photos": false_on_faces,
        "false_faces_on_face_free": sum(len(detector.detect(g)) for g in negatives),
        "real_photos": {name: len(detector.detect(g)) for name, (g, _) in real.items()},
        "median_ms": float(np.median(ms)),
        "mean_ms": float(np.mean(ms)),
    }


def run(data_path: str | None = None, n: int = 300, seed: int = 0) -> dict[str, Any]:
    from .data import load_fer2013

    faces = load_fer2013(data_path)["val"].images
    negatives = backgrounds()  # read once: the photos' backgrounds and the face-free pictures
    photos = make_photos(faces, n, seed, negatives)
    real = real_photos()
    settings = list(dict.fromkeys([SHIPPED, *CANDIDATES]))
    rows = [measure(s, photos, negatives, real) for s in settings]
    return {
        "schema": SCHEMA,
        "created_utc": utc_timestamp(),
        "photos": n,
        "seed": seed,
        "faces": rows[0]["faces"],
        "face_free_pictures": len(negatives),
        "real_photos_faces": {name: f for name, (_, f) in real.items()},
        "shipped": asdict(SHIPPED),
        "settings": rows,
        "environment": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }


def summary(record: dict[str, Any]) -> str:
    lines = [f"{record['photos']} photos, {record['faces']} faces; {record['face_free_pictures']} face-free pictures"]
    for r in record["settings"]:
        mark = " (shipped)" if r["setting"] == record["shipped"] else ""
        kinds = ", ".join(f"{k} {v:.1%}" for k, v in r["recall_by_kind"].items())
        lines.append(
            f"{r['label']}{mark}: found {r['recall']:.1%} ({kinds}); false {r['false_faces_on_photos']} on photos, "
            f"{r['false_faces_on_face_free']} on face-free; real {r['real_photos']}; {r['median_ms']:.1f} ms median"
        )
    return "\n".join(lines)
