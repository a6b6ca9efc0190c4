"""Turn whatever a user hands us into an upright PIL image, or a clear InvalidImageError.

Accepted: a path, bytes, a PIL image, or a numpy array (H, W) gray, (H, W, 3) RGB or BGR
(say `channel_order="BGR"` for OpenCV arrays), (H, W, 4) RGBA. EXIF orientation is applied;
16-bit, palette, CMYK and transparent images are brought to 8-bit RGB or L (transparency is
composited on white); animated images give their first frame.

Only the formats in `FORMATS` are parsed: Pillow knows some forty, and every parser is attack
surface (EPS even runs Ghostscript), while a photo app needs a handful.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError

# A 12-megapixel phone photo is 12e6 pixels; a decompression bomb (a few KB that inflate to
# 30000x30000) is rejected before decoding. Pillow's own guard (MAX_IMAGE_PIXELS) stays on too.
MAX_PIXELS = 50_000_000
MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 1
# Longer side over shorter side. A panorama is ~8:1; a 1x50000 strip is no photo of a face, and
# reading it as one face would pad it to a 50000x50000 square.
MAX_ASPECT_RATIO = 25
# A progressive JPEG codes its pixels in scans, and the decoder makes a pass over the whole image per
# scan: encoders write 6-13 (libjpeg's default script: 10 in colour, 6 in gray), while 5,000 repeated
# scans in 682 KB took 35 s to decode. Counted from the markers before decoding.
MAX_JPEG_SCANS = 32
# Pillow's WebP decoder holds about four RGBA copies of the picture while it decodes (+750 MB at
# 49 MP, +1 GB with the conversion after it); WebP photos are rarely over 16 MP.
MAX_WEBP_PIXELS = 25_000_000
# The buffer libtiff allocates per tile: a 1 KB TIFF may declare 46336x46336 tiles for a 64x64 image
# (+1.9 GB before failing). 64 MB holds a 4096x4096 RGBA tile.
MAX_TIFF_TILE_BYTES = 64 * 1024 * 1024
# The formats bytes and files may be in. Pillow's JPEG opener also reads MPO, the multi-picture
# JPEG many phone cameras write.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# What the web app takes: photo formats a browser sends. TIFF (scans, microscopy) is for the API
# and the CLI only; one parser fewer facing the public.
WEB_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
# The file name endings of each format, for folder walks (data, batch) and the upload widget.
SUFFIXES = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "GIF": (".gif",),
    "TIFF": (".tif", ".tiff"),
}
IMAGE_SUFFIXES = frozenset(s for f in FORMATS for s in SUFFIXES[f])
WEB_SUFFIXES = tuple(s.lstrip(".") for f in WEB_FORMATS for s in SUFFIXES[f])  # as st.file_uploader takes them
# Leading bytes of those formats, to say "a damaged PNG" rather than "not an image" when the
# header itself is broken.
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}

# Formats people try that Pillow cannot read here (ISO-BMFF "ftyp" brands), named in the message.
_UNSUPPORTED_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF"}

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


def load_image(source: ImageSource, channel_order: str = "RGB", formats: tuple[str, ...] = FORMATS) -> Image.Image:
    """An upright 8-bit image in mode "RGB" or "L"; raises InvalidImageError with the reason.
    Bytes and files are parsed only in `formats` (a subset of FORMATS)."""
    if isinstance(source, np.ndarray):
        return _from_array(source, channel_order)
    if isinstance(source, Image.Image):
        # Image.open is lazy: a caller's image may still hold undecoded (truncated) data.
        return _normalise(_load_pixels(_check_size(source, "the image"), "the image"), "the image")
    if isinstance(source, (str, os.PathLike)):
        return _from_bytes(_read_file(Path(source)), str(source), formats)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), "the upload", formats)
    raise InvalidImageError(
        f"cannot read an image from a {type(source).__name__}; pass a path, bytes, a PIL image or a numpy array"
    )


def _read_file(path: Path) -> bytes:
    """The file's bytes, never more than MAX_BYTES + 1 of them (a file may grow after a stat)."""
    if not path.exists():
        raise InvalidImageError(f"{path}: no such file")
    if not path.is_file():
        raise InvalidImageError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidImageError(f"{path} could not be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise InvalidImageError(f"{path}: over the {MAX_BYTES / 1e6:.0f} MB limit")
    return raw


def sniff_format(raw: bytes) -> str | None:
    """The format the leading bytes claim (PNG, JPEG, GIF, WEBP, BMP, TIFF), or None."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for sig, fmt in SIGNATURES.items() if raw.startswith(sig)), None)


def _from_bytes(raw: bytes, what: str, formats: tuple[str, ...] = FORMATS) -> Image.Image:
    if not raw:
        raise InvalidImageError(f"{what} is empty (0 bytes)")
    if len(raw) > MAX_BYTES:
        raise InvalidImageError(f"{what}: {len(raw) / 1e6:.0f} MB is over the {MAX_BYTES / 1e6:.0f} MB limit")
    claimed = sniff_format(raw)
    if claimed and claimed not in formats:
        raise InvalidImageError(f"{what} is a {claimed} file; accepted here: {', '.join(formats)}")
    if claimed is None and raw[4:8] == b"ftyp" and raw[8:12] in _UNSUPPORTED_BRANDS:
        raise InvalidImageError(
            f"{what} is a {_UNSUPPORTED_BRANDS[raw[8:12]]} file, which this app cannot read; "
            f"convert it to one of {', '.join(formats)} (an iPhone can save photos as JPEG)"
        )
    if claimed == "JPEG":
        _check_jpeg_scans(raw, what)
    try:
        im = Image.open(io.BytesIO(raw), formats=[f for f in formats if f in FORMATS])
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{what} is too large to decode safely: {exc}") from None
    except Exception as exc:  # UnidentifiedImageError, or a parser's own error on a broken header
        unidentified = isinstance(exc, UnidentifiedImageError)  # its message only names the BytesIO
        if claimed:
            detail = "" if unidentified else f" ({exc})"
            raise InvalidImageError(f"{what} starts like a {claimed} file but its header is damaged{detail}") from None
        if unidentified:
            raise InvalidImageError(
                f"{what} is not an image this app can read (use one of {', '.join(formats)})"
            ) from None
        raise InvalidImageError(f"{what} could not be opened as an image: {exc}") from None
    _check_size(im, what)
    if im.format == "WEBP" and im.size[0] * im.size[1] > MAX_WEBP_PIXELS:
        raise InvalidImageError(
            f"{what} is a WebP of {im.size[0]}x{im.size[1]} = {im.size[0] * im.size[1] / 1e6:.0f} megapixels; "
            f"WebP is read up to {MAX_WEBP_PIXELS / 1e6:.0f} megapixels here (its decoder needs several copies "
            "in memory). Scale it down or save it as JPEG or PNG"
        )
    if im.format == "TIFF":
        _check_tiff_tiles(im, what)
    return _normalise(_load_pixels(im, what, first_frame=True), what)


_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a marker, not stuffing, RSTn or fill


def jpeg_scan_count(raw: bytes) -> int:
    """How many scans (SOS segments) the first image of a JPEG holds, from its markers alone.

    Header segments are skipped by their lengths (an EXIF thumbnail's scans do not count); after
    each scan's header, its entropy-coded data runs to the next marker. Stops at the first EOI.
    """
    scans, i, n = 0, 2, len(raw)
    while i + 4 <= n:
        if raw[i] != 0xFF:
            break  # garbage between segments: the decoder will say what is wrong
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # stand-alone markers
            i += 2
            continue
        i += 2 + int.from_bytes(raw[i + 2 : i + 4], "big")
        if marker == 0xDA:  # SOS: the header, then entropy-coded data up to the next marker
            scans += 1
            found = _JPEG_MARKER.search(raw, i)
            i = found.start() if found else n
    return scans


def _check_jpeg_scans(raw: bytes, what: str) -> None:
    scans = jpeg_scan_count(raw)
    if scans > MAX_JPEG_SCANS:
        raise InvalidImageError(
            f"{what} is a JPEG of {scans} scans; photos have at most about a dozen and this app reads up to "
            f"{MAX_JPEG_SCANS}, since every scan is another pass over the whole image. Re-save it as a JPEG "
            "(any editor writes a normal one) and try again"
        )


def _check_tiff_tiles(im: Image.Image, what: str) -> None:
    tags = getattr(im, "tag_v2", {})
    tile_w, tile_h = tags.get(322), tags.get(323)  # TileWidth, TileLength
    if not (isinstance(tile_w, int) and isinstance(tile_h, int)):
        return  # a striped TIFF: libtiff clamps a strip to the image's own rows
    bands = max(1, len(im.getbands()))
    bits = tags.get(258) or (8,)  # BitsPerSample: one per band
    depth = max(1, max(bits) if isinstance(bits, tuple) else int(bits))
    tile_bytes = tile_w * tile_h * bands * depth / 8
    if tile_bytes > MAX_TIFF_TILE_BYTES:
        raise InvalidImageError(
            f"{what} is a TIFF of {im.size[0]}x{im.size[1]} pixels stored in {tile_w}x{tile_h} tiles, "
            f"{tile_bytes / 2**20:.0f} MB each to decode (the limit is {MAX_TIFF_TILE_BYTES / 2**20:.0f} MB); "
            "re-save it with ordinary tiles or as PNG"
        )


def _load_pixels(im: Image.Image, what: str, first_frame: bool = False) -> Image.Image:
    """Decode now, so a damaged file fails here with a clear message rather than later."""
    try:
        if first_frame:
            im.seek(0)  # first frame of an animation
        im.load()
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{what} is too large to decode safely: {exc}") from None
    except Exception as exc:  # truncated files, bad CRCs, broken codecs
        raise InvalidImageError(f"{what} is damaged or truncated and could not be decoded ({exc})") from None
    return im


def _check_size(im: Image.Image, what: str) -> Image.Image:
    w, h = im.size
    if w < MIN_SIDE or h < MIN_SIDE:
        raise InvalidImageError(f"{what} has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise InvalidImageError(
            f"{what} is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f}-megapixel "
            "limit; scale it down and try again"
        )
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise InvalidImageError(
            f"{what} is {w}x{h} pixels, {max(w, h) / min(w, h):.0f} times longer than it is wide; this app "
            f"reads images up to {MAX_ASPECT_RATIO}:1. Crop it around the face and try again"
        )
    return im


def _normalise(im: Image.Image, what: str) -> Image.Image:
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:
        pass  # a broken EXIF block: keep the pixels as stored rather than refuse the photo
    try:
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            a = np.asarray(im, dtype=np.float64)
            top = 65535.0 if a.max() > 255 else 255.0
            return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
        if im.mode == "F":
            a = np.asarray(im, dtype=np.float64)
            a = a * 255.0 if a.max() <= 1.0 else a
            return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode == "La":  # premultiplied: Pillow converts it to LA only
            im = im.convert("LA")
        if im.mode in ("RGBA", "LA", "PA", "RGBa"):
            # Pasted onto white through its own alpha: one RGB copy, where alpha_composite held three
            # RGBA ones (a 49 MP transparent WebP: +1.5 GB before, +0.8 GB with the decoder's share)
            rgba = im if im.mode in ("RGBA", "LA") else im.convert("RGBA")
            white = Image.new("RGB", rgba.size, (255, 255, 255))
            white.paste(rgba.convert("RGB") if rgba.mode == "LA" else rgba, mask=rgba.getchannel("A"))
            return white
        if im.mode in ("L", "RGB"):
            return im
        if im.mode in ("1",):
            return im.convert("L")
        return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    except Exception as exc:
        raise InvalidImageError(f"{what} uses an image mode ({im.mode}) that could not be converted: {exc}") from None


def _from_array(a: np.ndarray, channel_order: str) -> Image.Image:
    if channel_order not in ("RGB", "BGR"):
        raise ValueError(f"channel_order must be 'RGB' or 'BGR', not {channel_order!r}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InvalidImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape}")
    if a.size == 0:
        raise InvalidImageError(f"the image array is empty (shape {a.shape})")
    if a.dtype == np.uint8:
        pass
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise InvalidImageError("a float image array must hold finite values in [0, 1]")
        a = (a * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype.kind == "u" and a.dtype.itemsize == 2:  # uint16, either byte order
        a = (a.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    else:
        raise InvalidImageError(f"image arrays must be uint8, uint16 or float in [0, 1]; got {a.dtype}")
    if a.ndim == 3 and channel_order == "BGR":
        a = a[:, :, [2, 1, 0, 3][: a.shape[2]]]
    im = Image.fromarray(np.ascontiguousarray(a))  # L, RGB or RGBA from the shape
    return _normalise(_check_size(im, "the image array"), "the image array")


def to_gray(im: Image.Image) -> np.ndarray:
    """(H, W) uint8 luma, with the same conversion Pillow applied to decode FER2013's JPEGs."""
    return np.asarray(im if im.mode == "L" else im.convert("L"))
