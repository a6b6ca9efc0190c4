"""The annotated photo and the enlarged 48x48 face the pages show."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer_core.faces import Box

from .style import PALETTE

DISPLAY_MAX_SIDE = 1280  # the annotated photo on the page; wider than any page layout


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font
    except (TypeError, OSError):  # Pillow built without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def draw_faces(
    image: Image.Image, boxes: Sequence[Box], captions: Sequence[str] | None = None, max_side: int | None = None
) -> Image.Image:
    """A copy of `image` with numbered face boxes (1, 2, ... as in the result list).

    Line width and font size scale with the photo, so the numbers stay legible whether the
    photo is a 300-px thumbnail or a 12-megapixel original shown shrunk to the page width;
    each label sits on a filled tag so it reads on dark and light photos alike. With `max_side`,
    a larger photo is first shrunk to that longest side (boxes scaled with it): a page is never
    wider than that, and encoding and sending a 12-megapixel copy would cost seconds.
    """
    out = image.convert("RGB")  # always a copy, never the caller's image
    if max_side and max(out.size) > max_side:
        scale = max_side / max(out.size)
        size = (max(1, round(out.width * scale)), max(1, round(out.height * scale)))
        out = out.resize(size, Image.Resampling.BILINEAR)
        boxes = [
            Box(round(b.x * scale), round(b.y * scale), max(1, round(b.w * scale)), max(1, round(b.h * scale)))
            for b in boxes
        ]
    draw = ImageDraw.Draw(out)
    longest = max(out.size)
    line = max(2, round(longest / 250))
    font = _font(max(12, round(longest / 40)))
    pad = max(2, line)
    for i, box in enumerate(boxes):
        colour = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = box.x, box.y, box.x + box.w - 1, box.y + box.h - 1
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text = f"{i + 1}" + (f" {captions[i]}" if captions and i < len(captions) and captions[i] else "")
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        ty = y0 - th if y0 - th >= 0 else y0  # above the box, or inside it at the photo's top edge
        tx = min(max(0, x0), max(0, out.width - tw))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
        draw.text((tx + pad - left, ty + pad - top), text, fill="black", font=font)
    return out


def enlarge_face(face: np.ndarray, scale: int = 4) -> Image.Image:
    """The network's 48x48 input, enlarged with nearest-neighbour so the pixels it saw stay visible."""
    im = Image.fromarray(np.asarray(face, dtype=np.uint8))
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
