"""`python -m fer_core explain`: each model's occlusion map of every face in photos, as files.

For face i (numbered as `predict` numbers them: face 1 is box 1) of `photo.jpg`, in the output folder:

    photo_face<i>.png            the 48x48 face the models read
    photo_face<i>_<model>.npy    each model's map, float32 (48, 48), higher = more important
    photo_face<i>_overlay.png    the face under each model's map, side by side, on one colour scale

Model names are the registry's. Two photos with the same stem (a/x.jpg, b/x.jpg) get x_face1...
and x-2_face1...; nothing already in the folder is overwritten silently: files are replaced only
by the run that names them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_bytes_atomic
from .batch import Unreadable, iter_image_files
from .errors import InvalidImageError
from .explain import FaceMaps, overlay
from .imageio import MAX_BYTES
from .predict import Predictor
from .registry import model_title

PANEL = 192  # side of each overlay panel, pixels


def _png(rgb_or_gray: np.ndarray) -> bytes:
    img = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def overlay_strip(face: np.ndarray, maps: FaceMaps) -> np.ndarray:
    """The face under each model's map, left to right in the maps' order, titled, on one scale."""
    panels = []
    for name, saliency in maps.maps.items():
        panel = overlay(face, saliency, maps.scale, PANEL)
        title = np.full((22, PANEL, 3), 255, np.uint8)
        cv2.putText(title, model_title(name), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(np.vstack([title, panel]))
    gap = np.full((PANEL + 22, 6, 3), 255, np.uint8)
    out = [panels[0]]
    for p in panels[1:]:
        out += [gap, p]
    return np.hstack(out)


def explain_photos(paths: Sequence[str], out: str, predictor: Predictor, args: argparse.Namespace) -> int:
    """Write the files above for every photo; 1 if any photo failed (each failure printed), else 0."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stems: dict[str, int] = {}
    failed = 0
    for f in iter_image_files(paths):
        if isinstance(f, Unreadable):
            failed += 1
            print(f"error: {f.message}", file=sys.stderr)
            continue
        try:
            if f.stat().st_size > MAX_BYTES:
                raise InvalidImageError(f"{f}: over the {MAX_BYTES / 1e6:.0f} MB limit")
            explanation = predictor.explain(
                f,
                detect=args.detect,
                small_faces=args.small_faces,
                region=args.region,
                max_faces=args.max_faces,
                patch=args.patch,
                stride=args.stride,
            )
        except (InvalidImageError, OSError, ValueError) as exc:
            failed += 1
            print(f"error: {f}: {exc}", file=sys.stderr)
            continue
        stems[f.stem] = stems.get(f.stem, 0) + 1
        stem = f.stem if stems[f.stem] == 1 else f"{f.stem}-{stems[f.stem]}"
        faces = explanation.analysis.faces
        if not faces:
            print(f"{f}: no face found (try --no-detect)")
            continue
        for i, (face, maps) in enumerate(zip(faces, explanation.maps, strict=True), start=1):
            if maps is None or face.face is None:
                continue
            base = folder / f"{stem}_face{i}"
            write_bytes_atomic(base.with_name(base.name + ".png"), _png(face.face))
            for name, saliency in maps.maps.items():
                write_bytes_atomic(base.with_name(f"{base.name}_{name}.npy"), _npy(saliency))
            write_bytes_atomic(base.with_name(base.name + "_overlay.png"), _png(overlay_strip(face.face, maps)))
        n = explanation.explained
        print(
            f"{f}: {n} of {len(faces)} face(s) explained in {explanation.seconds:.2f} s "
            f"({1000 * explanation.seconds / max(n, 1):.0f} ms per face, {len(predictor.models)} models) -> "
            f"{folder / stem}_face*"
        )
    return 1 if failed else 0
