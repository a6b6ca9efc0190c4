"""The sample photos: the public-domain astronaut photo shipped in assets/ and two photos generated
from it in memory (a group of four, a tilted and dim copy). No other photo is shipped, and never a
FER2013 image: the data set must not be redistributed. The app's gallery shows them
(ui/examples.py), the detection benchmark reads them (fer_core.bench_detect)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "assets" / "astronaut.jpg"  # NASA, public domain
SAMPLE_FACES = {"astronaut": 1, "group": 4, "tilted": 1}  # key -> how many faces it shows
FACE_BOX = (150, 30, 300, 210)  # the astronaut's head in the 512x512 photo (with some hair and collar)


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@lru_cache(maxsize=len(SAMPLE_FACES))
def sample_photo(key: str) -> bytes:
    """JPEG bytes of a sample photo, built on first use (a few milliseconds); a KeyError names the keys."""
    if key not in SAMPLE_FACES:
        raise KeyError(f"unknown sample photo {key!r}; known: {', '.join(SAMPLE_FACES)}")
    raw = SAMPLE_PHOTO.read_bytes()
    if key == "astronaut":
        return raw
    photo = Image.open(io.BytesIO(raw)).convert("RGB")
    if key == "tilted":
        turned = photo.rotate(12, resample=Image.Resampling.BICUBIC, fillcolor=(120, 120, 120))
        return _jpeg(ImageEnhance.Brightness(turned).enhance(0.55))
    face = photo.crop(FACE_BOX)
    group = Image.new("RGB", (900, 420), (96, 104, 112))
    for i, (x, y, side) in enumerate(((30, 60, 220), (270, 110, 170), (470, 40, 230), (720, 120, 150))):
        tile = face.resize((side, round(side * 1.2)), Image.Resampling.LANCZOS)
        group.paste(ImageOps.mirror(tile) if i % 2 else tile, (x, y))
    return _jpeg(group)
