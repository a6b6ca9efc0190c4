"""Generators of hostile inputs, one per class the public app must bound (nothing downloaded).

Each returns bytes or a JSON-able object small enough to build in milliseconds; what makes them
hostile is the work or memory they would cost a naive reader, not their size.
"""

from __future__ import annotations

import copy
import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

# ---- images ------------------------------------------------------------------------------------


def progressive_jpeg(side: int = 256, extra_scans: int = 0, mode: str = "L") -> bytes:
    """A progressive JPEG of a flat image, with its last AC scan repeated `extra_scans` more times:
    a valid file that makes the decoder pass over the whole image once per scan."""
    buf = io.BytesIO()
    Image.new(mode, (side, side), 128 if mode == "L" else (128, 100, 90)).save(buf, "JPEG", progressive=True)
    raw = buf.getvalue()
    scans = _sos_spans(raw)
    start, end = scans[-1]
    return raw[:end] + raw[start:end] * extra_scans + raw[end:]


def _sos_spans(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of every scan: its SOS segment and the entropy-coded data after it."""
    spans, i = [], 2
    while i < len(raw) and raw[i + 1] != 0xD9:
        length = int.from_bytes(raw[i + 2 : i + 4], "big")
        j = i + 2 + length
        if raw[i + 1] == 0xDA:
            while not (raw[j] == 0xFF and raw[j + 1] != 0 and not 0xD0 <= raw[j + 1] <= 0xD7):
                j += 1
            spans.append((i, j))
        i = j
    return spans


def strip_png(width: int, height: int) -> bytes:
    """A 1-bit gray PNG of width x height, a few hundred bytes for any size."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    body = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def tiled_tiff(width: int = 64, height: int = 64, tile: int = 64) -> bytes:
    """A deflate-compressed 8-bit gray TIFF in one tile of tile x tile pixels (valid when the tile
    covers the image; a huge tile makes libtiff allocate tile^2 bytes before it reads any data)."""
    data = zlib.compress(bytes(tile * tile if tile * tile <= 1 << 26 else 1 << 16))  # whole tiles up to 64 MB
    entries = [
        (256, 3, width),  # ImageWidth
        (257, 3, height),  # ImageLength
        (258, 3, 8),  # BitsPerSample
        (259, 3, 8),  # Compression: deflate
        (262, 3, 1),  # Photometric: black is zero
        (277, 3, 1),  # SamplesPerPixel
        (322, 4, tile),  # TileWidth
        (323, 4, tile),  # TileLength
        (324, 4, 0),  # TileOffsets (patched below)
        (325, 4, len(data)),  # TileByteCounts
    ]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 324 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return out + struct.pack("<I", 0) + data


def flat_webp(width: int, height: int, mode: str = "RGBA") -> bytes:
    """A lossless WebP of one colour: ~2 KB whatever its size."""
    buf = io.BytesIO()
    Image.new(mode, (width, height), (10, 20, 30, 128)[: len(mode)]).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


# ---- run files ---------------------------------------------------------------------------------


def hostile_runs(valid: dict[str, Any]) -> dict[str, Any]:
    """Variants of a valid run, each of which a reader must refuse (name -> run object or raw
    JSON text): edge types that pass a naive check and then crash or stall the page."""
    out: dict[str, Any] = {}

    def variant(name: str):
        run = copy.deepcopy(valid)
        out[name] = run
        return run

    model = valid["models"][0]
    run = variant("history_of_30000_models")
    run["history"] = {f"m{i}": [{"epoch": 1, "val_acc": 0.5}] for i in range(30_000)}
    run = variant("too_many_history_rows")
    run["history"] = {model: [{"epoch": i + 1, "val_acc": 0.5} for i in range(5_000)]}
    run = variant("epoch_null_after_a_stage")
    run["history"] = {model: [{"epoch": 1, "stage": 1, "val_acc": 0.4}, {"epoch": None, "stage": 2, "val_acc": 0.5}]}
    run = variant("probabilities_summing_to_7")
    run["samples"]["probs"] = [[1.0] * 7 for _ in run["samples"]["probs"]]
    run = variant("lone_surrogate")
    run["name"] = "\ud800"
    run = variant("too_many_models")
    run["models"] = [f"m{i}" for i in range(50)]
    text = _dumps(valid)
    out["integer_of_5000_digits"] = text.replace('"threads":', '"threads":' + "9" * 5000 + ',"x":', 1)
    out["nested_100000_deep"] = "[" * 100_000 + "]" * 100_000
    return out


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


# ---- spreadsheet and markup text ----------------------------------------------------------------

FORMULA_NAMES = ("=SUM(1+1)*cmd|calc.jpg", "+cmd.jpg", "-2+3.jpg", "@x.jpg", "\tx.jpg", "\rx.jpg")
LINK_NAMES = ("www.evil-example.com.jpg", "see https://evil.example/a.jpg", "[x](http://evil.example).jpg")


def noise_face(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(48, 48), dtype=np.uint8)
