"""Hostile and odd inputs, generated here (nothing downloaded): every one gives a correct result or a
clear InvalidImageError, never another exception, and each call returns within TIME_BOUND_S.

Also: Pillow's decompression-bomb guard stays on, and one Predictor shared by 8 threads gives
every thread exactly the single-threaded result.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

import fer_core
import fer_core.imageio
from fer_core import InvalidImageError
from fer_core.faces import DETECT_MAX_SIDE
from fer_core.predict import Analysis, Predictor

ASTRONAUT = Path(__file__).resolve().parent.parent / "assets" / "astronaut.jpg"
TIME_BOUND_S = 10.0
pytestmark = pytest.mark.timeout(180)  # a hang (not just a slow image) fails instead of stalling
# In the 512x512 astronaut the face spans roughly x 170-290, y 60-200 (see test_predict.py).
FACE_X, FACE_Y = (170, 290), (60, 200)
T = Image.Transpose


@pytest.fixture(scope="module")
def predictor(weights_dir) -> Predictor:
    return Predictor.load(weights_dir)


@cache
def astronaut() -> Image.Image:
    with Image.open(ASTRONAUT) as im:
        return im.convert("RGB")


def encode(im: Image.Image, fmt: str = "PNG", **save: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def timed(predictor: Predictor, source: Any, **kw: Any) -> Analysis:
    """analyze(), asserting the time bound whether it returns or raises."""
    t0 = time.perf_counter()
    try:
        return predictor.analyze(source, **kw)
    finally:
        elapsed = time.perf_counter() - t0
        assert elapsed < TIME_BOUND_S, f"{elapsed:.1f} s for one image"


# ---- hand-built PNGs ---------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_1bit(width: int, height: int, rows: int | None = None) -> bytes:
    """A black 1-bit gray PNG of width x height whose zlib stream holds `rows` rows (all by default):
    megapixels in kilobytes, as a decompression bomb is built."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    z = zlib.compressobj(9)
    stream = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


@cache
def honest_bomb() -> bytes:
    """30000x30000 pixels, every row present: about 110 KB that would inflate to 900 megapixels."""
    return png_1bit(30000, 30000)


def flip_crc(png: bytes, kind: bytes) -> bytes:
    """The PNG with the CRC of its first `kind` chunk wrong."""
    i = png.index(kind)
    (length,) = struct.unpack(">I", png[i - 4 : i])
    raw = bytearray(png)
    raw[i + 4 + length] ^= 0xFF
    return bytes(raw)


# ---- the corpus --------------------------------------------------------------------------------

ERRORS: dict[str, tuple[Callable[[], Any], str]] = {
    "zero-bytes": (lambda: b"", "empty (0 bytes)"),
    "text": (lambda: b"Dear diary, today I renamed this file to photo.jpg.\n" * 8, "not an image"),
    "truncated-jpeg": (lambda: ASTRONAUT.read_bytes()[:20_000], "damaged or truncated"),
    "jpeg-header-only": (lambda: ASTRONAUT.read_bytes()[:300], "JPEG file but its header is damaged"),
    "truncated-png": (lambda: encode(astronaut())[:5000], "damaged or truncated"),
    "png-bad-ihdr-crc": (lambda: flip_crc(encode(astronaut()), b"IHDR"), "PNG file but its header is damaged"),
    "bomb-few-kb": (lambda: png_1bit(30000, 30000, rows=100), "too large to decode safely"),
    "bomb-honest": (honest_bomb, "too large to decode safely"),
    "over-our-limit": (lambda: png_1bit(8000, 7000), "over the 50-megapixel limit"),
    "ppm": (lambda: encode(astronaut(), "PPM"), "not an image"),  # Pillow reads it; we do not parse it
    "tga": (lambda: encode(astronaut(), "TGA"), "not an image"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_broken_inputs_say_what_is_wrong(predictor, name):
    make, fragment = ERRORS[name]
    raw = make()
    with pytest.raises(InvalidImageError) as err:
        timed(predictor, raw)
    assert fragment in str(err.value)


def test_the_bombs_are_small(predictor):
    assert len(png_1bit(30000, 30000, rows=100)) < 4_000  # a few KB declaring 900 megapixels
    assert len(honest_bomb()) < 150_000  # every row present, still small


def test_files_named_like_photos(predictor, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not a photo\n")
    (tmp_path / "folder.jpg").mkdir()
    for name, fragment in [("empty.jpg", "empty (0 bytes)"), ("notes.jpg", "not an image"), ("folder.jpg", "regular")]:
        with pytest.raises(InvalidImageError) as err:
            timed(predictor, tmp_path / name)
        assert name in str(err.value) and fragment in str(err.value)


def test_png_with_a_wrong_data_crc_still_decodes(predictor):
    # Pillow checks header CRCs but streams IDAT without its CRC: the pixels are intact, so read them.
    analysis = timed(predictor, flip_crc(encode(astronaut()), b"IDAT"))
    assert analysis.faces_found == 1


def test_pillow_guard_stays_on_and_ours_is_stated():
    assert Image.MAX_IMAGE_PIXELS is not None
    assert isinstance(fer_core.imageio.MAX_PIXELS, int)
    assert 12_000_000 < fer_core.imageio.MAX_PIXELS <= Image.MAX_IMAGE_PIXELS


def on_the_face(box: tuple[int, int, int, int], scale: float = 1.0, offset: tuple[int, int] = (0, 0)) -> bool:
    """Is the box centred on the astronaut's face (drawn `scale` times larger at `offset`), at a face's size?"""
    x, y, w, h = box
    cx, cy = (x + w / 2 - offset[0]) / scale, (y + h / 2 - offset[1]) / scale
    return FACE_X[0] < cx < FACE_X[1] and FACE_Y[0] < cy < FACE_Y[1] and 60 <= w / scale <= 140


def _one_face_on_the_astronaut(analysis: Analysis, size: tuple[int, int] = (512, 512)) -> None:
    assert analysis.image.size == size and analysis.image.mode in ("RGB", "L")
    assert analysis.faces_found == 1
    (face,) = analysis.faces
    assert on_the_face(face.box)


def _frames(first: Image.Image, second: Image.Image, fmt: str) -> bytes:
    return encode(first, fmt, save_all=True, append_images=[second], duration=100, loop=0)


GRAY = Image.new("RGB", (512, 512), (128, 128, 128))

FACES: dict[str, Callable[[], bytes]] = {
    "cmyk-jpeg": lambda: encode(astronaut().convert("CMYK"), "JPEG", quality=92),
    "palette-png-transparent": lambda: encode(astronaut().convert("P", palette=Image.Palette.ADAPTIVE), transparency=0),
    "rgba-png": lambda: encode(astronaut().convert("RGBA")),
    "gray-png": lambda: encode(astronaut().convert("L")),
    "1-bit-png": lambda: encode(astronaut().convert("1")),
    "bmp": lambda: encode(astronaut(), "BMP"),
    "webp": lambda: encode(astronaut(), "WEBP", quality=90),
    "animated-gif": lambda: _frames(astronaut(), GRAY, "GIF"),
    "animated-webp": lambda: _frames(astronaut(), GRAY, "WEBP"),
}


@pytest.mark.parametrize("name", list(FACES))
def test_every_format_and_mode_finds_the_face(predictor, name):
    _one_face_on_the_astronaut(timed(predictor, FACES[name]()))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_use_their_first_frame(predictor, fmt):
    assert timed(predictor, _frames(GRAY, astronaut(), fmt)).faces_found == 0


def test_transparency_is_composited_on_white(predictor):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:32, :, :3] = (255, 0, 0)
    rgba[:32, :, 3] = 255  # the top half opaque red, the bottom half fully transparent black
    pal = Image.new("P", (64, 64), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0])
    pal.paste(1, (0, 0, 64, 32))
    for raw in (encode(Image.fromarray(rgba)), encode(pal, transparency=0)):
        a = np.asarray(timed(predictor, raw).image)
        assert a.shape == (64, 64, 3)
        assert (a[:32] == (255, 0, 0)).all() and (a[32:] == 255).all()


def test_16_bit_gray_is_scaled_to_8_bit(predictor):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    raw = encode(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(raw)).mode.startswith("I")
    analysis = timed(predictor, raw)
    a = np.asarray(analysis.image)
    assert analysis.image.mode == "L" and a.shape == (64, 256)
    assert a[0, 0] == 0 and a[0, -1] == 255 and (np.diff(a[0].astype(int)) >= 0).all()
    assert analysis.faces == []


@pytest.mark.parametrize("side", [1, 10])
def test_tiny_images(predictor, side):
    raw = encode(Image.new("RGB", (side, side), (90, 120, 150)))
    analysis = timed(predictor, raw)
    assert analysis.image.size == (side, side) and analysis.faces == [] and analysis.faces_found == 0
    (whole,) = timed(predictor, raw, detect=False).faces  # still one face when asked for the whole image
    assert tuple(whole.box) == (0, 0, side, side)


def test_twelve_megapixel_photo_is_detected_on_a_small_copy(predictor, monkeypatch):
    ramp = np.linspace(40, 220, 4000, dtype=np.float32)[None, :, None] * np.ones((3000, 1, 3), np.float32)
    photo = Image.fromarray(ramp.astype(np.uint8))
    scale, (ox, oy) = 2400 / 512, (800, 300)
    photo.paste(astronaut().resize((2400, 2400), Image.Resampling.BICUBIC), (ox, oy))
    raw = encode(photo, "JPEG", quality=90)

    import fer_core.faces

    seen: list[tuple[int, ...]] = []
    equalize = fer_core.faces.cv2.equalizeHist
    monkeypatch.setattr(fer_core.faces.cv2, "equalizeHist", lambda a: seen.append(a.shape) or equalize(a))
    analysis = timed(predictor, raw)
    assert seen == [(300, DETECT_MAX_SIDE)]  # the cascade ran on a 400x300 copy, not on 12 megapixels
    assert analysis.image.size == (4000, 3000) and analysis.faces_found == 1
    (face,) = analysis.faces
    assert on_the_face(face.box, scale, (ox, oy))  # in the 12-megapixel photo's pixels


# Pillow's transpose for each EXIF orientation, and what a camera stored so that it gives the upright image.
EXIF_TRANSPOSE = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270}
EXIF_TRANSPOSE |= {7: T.TRANSVERSE, 8: T.ROTATE_90}
STORED = {**EXIF_TRANSPOSE, 6: T.ROTATE_90, 8: T.ROTATE_270}


@pytest.fixture(scope="module")
def upright_face(predictor):
    upright = astronaut().crop((0, 0, 512, 400))  # not square, so a turn shows in the size
    (face,) = predictor.predict(encode(upright, "JPEG", quality=95))
    return upright, face.box


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(predictor, upright_face, orientation):
    upright, expected = upright_face
    stored = upright.transpose(STORED[orientation]) if orientation > 1 else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    analysis = timed(predictor, encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert analysis.image.size == (512, 400)
    (face,) = analysis.faces
    # the box is in upright pixels, on the face (JPEG re-encoding of turned blocks moves it a pixel or two)
    assert np.abs(np.subtract(face.box, expected)).max() <= 4
    assert on_the_face(face.box)


def test_fifty_faces_are_capped_and_counted(predictor):
    tile = astronaut().crop((174, 55, 274, 195))  # the face, 100x140: 10 across keeps each face findable
    mosaic = Image.new("RGB", (tile.width * 10, tile.height * 5))
    for i in range(50):
        mosaic.paste(tile, ((i % 10) * tile.width, (i // 10) * tile.height))
    analysis = timed(predictor, encode(mosaic, "JPEG", quality=92))
    assert analysis.faces_found >= 30  # most of the 50 (the cascade misses a few at this size)
    assert len(analysis.faces) == predictor.max_faces == fer_core.predict.MAX_FACES and analysis.truncated
    assert len({f.box for f in analysis.faces}) == predictor.max_faces
    for f in analysis.faces:
        assert 0 <= f.box.x and f.box.x + f.box.w <= mosaic.width and f.box.y + f.box.h <= mosaic.height


def test_small_faces_in_a_group_photo_need_the_small_faces_option(predictor):
    """A 6x4 mosaic of whole 256-px photos: each face is ~3 % of the longer side, below the default
    detection floor (fast path) and above the small-faces one."""
    tile = astronaut().resize((256, 256))
    group = Image.new("RGB", (256 * 6, 256 * 4))
    for i in range(24):
        group.paste(tile, ((i % 6) * 256, (i // 6) * 256))
    raw = encode(group, "JPEG", quality=92)
    assert timed(predictor, raw).faces_found < 12
    analysis = timed(predictor, raw, small_faces=True)
    assert analysis.faces_found >= 20
    for f in analysis.faces:  # every box sits on a face: the face is at about (88-137, 30-100) of each tile
        cx, cy = (f.box.x + f.box.w / 2) % 256, (f.box.y + f.box.h / 2) % 256
        assert 70 < cx < 160 and 20 < cy < 110, f.box


def _shapes() -> Image.Image:
    rng = np.random.default_rng(7)
    im = Image.new("RGB", (640, 480), (200, 220, 240))
    draw = ImageDraw.Draw(im)
    for _ in range(30):
        x, y = (int(v) for v in rng.integers(0, 600, 2))
        s = int(rng.integers(10, 120))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + s, y + int(s * 0.8)], fill=colour)
    return im


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.fromarray(np.tile(np.linspace(0, 255, 640).astype(np.uint8), (480, 1))),
        _shapes,
    ],
    ids=["gradient", "shapes"],
)
def test_no_face_in_a_picture_without_one(predictor, make):
    analysis = timed(predictor, encode(make()))
    assert analysis.faces == [] and analysis.faces_found == 0


# ---- threads -----------------------------------------------------------------------------------


def _summary(analysis: Analysis) -> list[tuple[tuple[int, ...], dict[str, list[float]]]]:
    return [(tuple(f.box), f.probabilities) for f in analysis.faces]


def test_one_predictor_shared_by_eight_threads(predictor):
    images = {
        "astronaut": ASTRONAUT.read_bytes(),
        "flipped": encode(astronaut().transpose(T.FLIP_LEFT_RIGHT), "JPEG", quality=92),
        "blank": encode(Image.new("RGB", (320, 240), (250, 250, 250))),
    }
    expected = {name: _summary(predictor.analyze(raw)) for name, raw in images.items()}
    assert [len(expected[n]) for n in images] == [1, 1, 0]
    assert expected["astronaut"][0][0] != expected["flipped"][0][0]  # different answers, so a mix-up shows

    work = [name for _ in range(16) for name in images]  # 48 calls, interleaved
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda name: (name, _summary(predictor.analyze(images[name]))), work))
    for name, summary in got:
        assert [box for box, _ in summary] == [box for box, _ in expected[name]], name
        for (_, probs), (_, want) in zip(summary, expected[name], strict=True):
            for model in want:
                np.testing.assert_allclose(probs[model], want[model], rtol=0, atol=1e-6, err_msg=name)


def test_face_detector_reuses_cascades_across_threads(monkeypatch):
    """Streamlit runs each script run on a new thread: the detector must not parse its cascade
    file again for each of them, yet never lend one cascade to two threads at once."""
    import threading

    from fer_core.faces import FaceDetector

    detector = FaceDetector()
    loads = []
    real_load = detector._load
    monkeypatch.setattr(detector, "_load", lambda: loads.append(1) or real_load())
    gray = np.asarray(astronaut().convert("L"))
    for _ in range(10):  # ten script runs, one after another, each on a fresh thread
        t = threading.Thread(target=detector.detect, args=(gray,))
        t.start()
        t.join()
    assert loads == []  # the cascade loaded at construction served them all

    with ThreadPoolExecutor(max_workers=4) as pool:
        boxes = list(pool.map(lambda _: detector.detect(gray), range(12)))
    assert all(b == boxes[0] and len(b) == 1 for b in boxes)
    assert len(loads) <= 3  # one extra cascade per thread that found the pool empty, at most


def test_predictor_analyses_at_most_max_concurrent_photos_at_once(weights_dir, monkeypatch):
    """However many sessions upload at once, only `max_concurrent` photos are decoded at a time
    (what bounds the memory of 20 users sending large photos together)."""
    import threading
    import time

    import fer_core.predict as predict_module
    from fer_core import Predictor

    predictor = Predictor.load(weights_dir, threads=1)
    predictor = Predictor(predictor.models, max_concurrent=2)
    active, peak, lock = 0, 0, threading.Lock()
    real_load = predict_module.load_image

    def slow_load(*args, **kw):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)
            return real_load(*args, **kw)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(predict_module, "load_image", slow_load)
    raw = ASTRONAUT.read_bytes()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: predictor.analyze(raw), range(8)))
    assert all(len(r.faces) == 1 for r in results)
    assert peak == 2  # eight callers, two at a time


# ---- the same corpus through the CLI and the app ---------------------------------------------------


def _corpus() -> dict[str, tuple[bytes, str | None]]:
    """File name -> (bytes, the error fragment, or None for a photo with the astronaut's face)."""
    files: dict[str, tuple[bytes, str | None]] = {}
    for name, (make, fragment) in ERRORS.items():
        files[f"bad-{name}.jpg"] = (make(), fragment)
    for name, make in FACES.items():
        files[f"ok-{name}.png"] = (make(), None)
    return files


def test_the_corpus_through_the_batch_cli(weights_dir, tmp_path):
    from conftest import run_python

    corpus = _corpus()
    for name, (raw, _) in corpus.items():
        (tmp_path / "in" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(raw)
    out = tmp_path / "out.jsonl"
    r = run_python(
        "-m", "fer_core", "predict", str(tmp_path / "in"), "--weights-dir", str(weights_dir), "-o", str(out),
        "--no-progress", "--threads", "1", timeout=300,
    )  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr  # 1: some images failed, as documented
    rows = {Path(row["file"]).name: row for row in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == set(corpus)
    for name, (_, fragment) in corpus.items():
        if fragment is None:
            assert "error" not in rows[name] and len(rows[name]["faces"]) == 1, name
        else:
            assert fragment in rows[name]["error"] and name in rows[name]["error"], (name, rows[name])


def test_web_formats_refuse_tiff_that_the_api_reads(predictor):
    from fer_core.imageio import WEB_FORMATS

    tiff = encode(astronaut(), "TIFF")
    assert len(timed(predictor, tiff).faces) == 1  # the API and the CLI read TIFF scans
    with pytest.raises(InvalidImageError, match="is a TIFF file; accepted here: JPEG, PNG, WEBP, BMP, GIF"):
        predictor.analyze(tiff, formats=WEB_FORMATS)  # the app does not parse it at all
