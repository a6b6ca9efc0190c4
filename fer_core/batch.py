"""Batch prediction over files and folders, streamed: one output row per face as it is found.

    python -m fer_core predict photos/ more.jpg --format csv -o faces.csv

Memory stays flat however many images there are (nothing is accumulated); an unreadable image
is reported on stderr and in its own output row, and the run goes on. Exit status 1 if any
image failed, else 0.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from .errors import InvalidImageError
from .imageio import MAX_BYTES
from .labels import EMOTIONS
from .predict import Predictor

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def iter_image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given, and image files under folders (sorted, walked lazily)."""
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / name
        else:
            yield p


def csv_header(models: list[str]) -> list[str]:
    cols = ["file", "face", "x", "y", "w", "h", "label", "score", "agree"]
    for m in models:
        cols += [f"{m}_label", f"{m}_score"]
    return cols + [f"p_{e}" for e in EMOTIONS] + ["error"]


def predict_paths(
    paths: Iterable[str | os.PathLike],
    detect: bool = True,
    fmt: str = "json",
    weights_dir: str | None = None,
    models: list[str] | None = None,
    output: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    predictor: Predictor | None = None,
) -> int:
    predictor = predictor or Predictor.load(weights_dir, models, threads)
    names = predictor.model_names
    out: IO[str] = open(output, "w", newline="") if output else sys.stdout
    files = iter_image_files(paths)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(files, unit="image", file=sys.stderr, mininterval=1.0)
        files = bar
    errors = n_faces = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(csv_header(names))
    try:
        for f in files:
            try:
                if f.is_file() and f.stat().st_size > MAX_BYTES:
                    raise InvalidImageError(f"{f}: over the {MAX_BYTES / 1e6:.0f} MB limit")
                faces = predictor.predict(f, detect=detect)
            except (InvalidImageError, OSError) as exc:
                errors += 1
                print(f"error: {f}: {exc}", file=sys.stderr)
                if writer:
                    writer.writerow([str(f)] + [""] * (len(csv_header(names)) - 2) + [str(exc)])
                else:
                    out.write(json.dumps({"file": str(f), "error": str(exc)}) + "\n")
                continue
            n_faces += len(faces)
            if writer:
                for i, face in enumerate(faces):
                    b = face.box
                    row = [str(f), i, b.x, b.y, b.w, b.h, face.label, f"{face.score:.4f}", face.agree]
                    for m in names:
                        label, score = face.top(m)
                        row += [label, f"{score:.4f}"]
                    writer.writerow(row + [f"{p:.4f}" for p in face.ensemble] + [""])
            else:
                out.write(json.dumps({"file": str(f), "faces": [face.to_dict() for face in faces]}) + "\n")
            if bar is not None:
                bar.set_postfix(faces=n_faces, errors=errors, refresh=False)
    finally:
        if bar is not None:
            bar.close()
        if output:
            out.close()
        else:
            out.flush()
    return 1 if errors else 0
