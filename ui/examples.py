"""The Classify page's example photos: the public-domain astronaut photo and two photos generated
from it here (no other photo is shipped, and never a FER2013 image: the data set must not be
redistributed). Built in memory on first use, a few milliseconds each."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

SAMPLE_PHOTO = Path(__file__).resolve().parent.parent / "assets" / "astronaut.jpg"  # NASA, public domain

EXAMPLES = {  # key -> what the gallery button says
    "astronaut": "Astronaut (one face)",
    "group": "A group of four (generated)",
    "tilted": "Tilted and dim (generated)",
}
FILE_NAMES = {"astronaut": "astronaut.jpg", "group": "group-example.jpg", "tilted": "tilted-example.jpg"}
FACE_BOX = (150, 30, 300, 210)  # the astronaut's head in the 512x512 photo (with some hair and collar)


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@lru_cache(maxsize=len(EXAMPLES))
def example_photo(key: str) -> tuple[str, bytes]:
    """(file name, JPEG bytes) of an example; a KeyError names the known ones."""
    if key not in EXAMPLES:
        raise KeyError(f"unknown example {key!r}; known: {', '.join(EXAMPLES)}")
    raw = SAMPLE_PHOTO.read_bytes()
    if key == "astronaut":
        return FILE_NAMES[key], raw
    photo = Image.open(io.BytesIO(raw)).convert("RGB")
    if key == "tilted":
        turned = photo.rotate(12, resample=Image.Resampling.BICUBIC, fillcolor=(120, 120, 120))
        return FILE_NAMES[key], _jpeg(ImageEnhance.Brightness(turned).enhance(0.55))
    face = photo.crop(FACE_BOX)
    group = Image.new("RGB", (900, 420), (96, 104, 112))
    for i, (x, y, side) in enumerate(((30, 60, 220), (270, 110, 170), (470, 40, 230), (720, 120, 150))):
        tile = face.resize((side, round(side * 1.2)), Image.Resampling.LANCZOS)
        group.paste(ImageOps.mirror(tile) if i % 2 else tile, (x, y))
    return FILE_NAMES[key], _jpeg(group)
