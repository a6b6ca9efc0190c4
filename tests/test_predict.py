"""The Python API on photos: face boxes, every input kind, one preprocessing path, EXIF, bad inputs."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_faces
from PIL import Image, ImageDraw

import fer_core
from fer_core import EMOTIONS, InvalidImageError
from fer_core.data import _decode
from fer_core.faces import Box, crop_face, one_face
from fer_core.imageio import load_image, to_gray
from fer_core.preprocess import predict_proba

# In scikit-image's 512x512 astronaut the face spans roughly x 165-290, y 60-200; OpenCV's
# cascades find it at about (173-177, 65-67, 93-106, ...).
FACE_X, FACE_Y = (165, 290), (60, 200)


@pytest.fixture(scope="module")
def predictor(weights_dir):
    return fer_core.Predictor.load(weights_dir, threads=1)


def _jpeg(rgb: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=92, **save)
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (a decompression bomb's few bytes)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    struct.pack_into(">II", raw, 16, width, height)  # IHDR data starts after signature, length, type
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for fa, fb in zip(a, b, strict=True):
        assert fa.box == fb.box
        for name in fa.probabilities:
            np.testing.assert_allclose(fa.probabilities[name], fb.probabilities[name], rtol=0, atol=1e-6)


def test_the_astronaut_has_one_face_where_her_face_is(predictor, astronaut_jpeg):
    analysis = predictor.analyze(astronaut_jpeg)
    assert analysis.detected and analysis.faces_found == 1 and not analysis.truncated
    (face,) = analysis.faces
    b = face.box
    assert 0 <= b.x and 0 <= b.y and b.x + b.w <= 512 and b.y + b.h <= 512
    assert FACE_X[0] <= b.x and b.x + b.w <= FACE_X[1] and FACE_Y[0] <= b.y and b.y + b.h <= FACE_Y[1]
    assert b.w >= 60 and b.h >= 60
    # what reaches the networks is the documented crop of that box
    assert face.face.shape == (48, 48) and face.face.dtype == np.uint8
    assert np.array_equal(face.face, crop_face(to_gray(load_image(astronaut_jpeg)), b))
    assert set(face.probabilities) == set(predictor.model_names) == set(fer_core.list_models())


@pytest.mark.parametrize(
    "image",
    [
        np.full((480, 640), 128, np.uint8),  # uniform gray
        np.full((480, 640, 3), 255, np.uint8),  # white
        np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),  # noise
    ],
    ids=["gray", "white", "noise"],
)
def test_no_face_where_there_is_none(predictor, image):
    analysis = predictor.analyze(image)
    assert analysis.faces == [] and analysis.faces_found == 0


def test_every_input_kind_gives_the_same_result(predictor, astronaut_jpeg, tmp_path):
    rgb = np.asarray(load_image(astronaut_jpeg))
    assert rgb.shape == (512, 512, 3)
    gray = to_gray(Image.fromarray(rgb))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(astronaut_jpeg)
    reference = predictor.predict(astronaut_jpeg)
    assert len(reference) == 1
    sources = {
        "path": (path, "RGB"),
        "str path": (str(path), "RGB"),
        "bytearray": (bytearray(astronaut_jpeg), "RGB"),
        "PIL": (Image.open(io.BytesIO(astronaut_jpeg)), "RGB"),
        "numpy RGB": (rgb, "RGB"),
        "numpy BGR": (np.ascontiguousarray(rgb[:, :, ::-1]), "BGR"),
        "numpy float": (rgb / 255.0, "RGB"),
        "numpy uint16": (rgb.astype(np.uint16) * 257, "RGB"),
        "numpy RGBA": (rgba, "RGB"),
        "numpy BGRA": (np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]]), "BGR"),
        "PIL RGBA": (Image.fromarray(rgba), "RGB"),
        "numpy gray": (gray, "RGB"),
        "numpy gray (H, W, 1)": (gray[:, :, None], "RGB"),
        "PIL gray": (Image.fromarray(gray), "RGB"),
    }
    for what, (source, order) in sources.items():
        faces = predictor.predict(source, channel_order=order)
        try:
            _same(faces, reference)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None


def test_bgr_without_saying_so_is_read_as_rgb(predictor, astronaut_jpeg):
    rgb = np.asarray(load_image(astronaut_jpeg))
    swapped = np.ascontiguousarray(rgb[:, :, ::-1])
    assert np.array_equal(np.asarray(load_image(swapped, channel_order="BGR")), rgb)
    assert not np.array_equal(np.asarray(load_image(swapped)), rgb)
    with pytest.raises(ValueError, match="channel_order"):
        predictor.predict(rgb, channel_order="BRG")


def test_detect_false_reads_the_centred_square_as_one_face(predictor, astronaut_jpeg):
    (face,) = predictor.predict(astronaut_jpeg, detect=False)
    assert face.box == Box(0, 0, 512, 512)
    wide = np.asarray(load_image(astronaut_jpeg))[:400]  # 512 wide, 400 high
    (face,) = predictor.predict(wide, detect=False)
    assert face.box == Box(56, 0, 400, 400)
    tiny = np.zeros((3, 5), np.uint8)  # too small for the detector, still one face without it
    assert predictor.predict(tiny) == [] and len(predictor.predict(tiny, detect=False)) == 1


def test_one_face_whole_keeps_the_sides_the_centre_square_leaves_out():
    gray = np.zeros((40, 120), np.uint8)
    gray[:, :40] = 255  # a bright left third: outside the centred square, inside the whole image
    box, centre = one_face(gray, "centre")
    assert box == Box(40, 0, 40, 40) and centre.max() == 0
    box, whole = one_face(gray, "whole")
    assert box == Box(0, 0, 120, 40) and whole.shape == (48, 48)
    assert whole[:, :8].min() == 255 and whole[:, -8:].max() == 0  # padded, not stretched or cut
    with pytest.raises(ValueError, match="centre, whole"):
        one_face(gray, "middle")


def test_tta_flip_averages_each_model_over_the_face_and_its_mirror(predictor, astronaut_jpeg):
    """tta="flip" is evaluation's flip: per model, the mean of the face's and its mirror's softmax."""
    single = predictor.analyze(astronaut_jpeg)
    flip = predictor.analyze(astronaut_jpeg, tta="flip")
    assert (single.tta, flip.tta) == ("none", "flip")
    (a,), (b,) = single.faces, flip.faces
    assert a.box == b.box and np.array_equal(a.face, b.face)  # same face, read differently
    mirror = np.ascontiguousarray(a.face[None, :, ::-1])
    for name, model in predictor.models.items():
        expected = (predict_proba(model, a.face[None])[0] + predict_proba(model, mirror)[0]) / 2
        np.testing.assert_allclose(b.probabilities[name], expected, rtol=0, atol=1e-7)
        assert b.probabilities[name] != a.probabilities[name]  # the mirror was read (tiny test nets: ~1e-9 apart)
    np.testing.assert_allclose(b.ensemble, np.mean(list(b.probabilities.values()), axis=0), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="none, flip, tencrop"):
        predictor.predict(astronaut_jpeg, tta="mirror")


def test_face_prediction_is_typed_and_serialisable(predictor, astronaut_jpeg):
    (face,) = predictor.predict(astronaut_jpeg)
    d = json.loads(json.dumps(face.to_dict()))
    assert d == face.to_dict()
    assert d["labels"] == list(EMOTIONS)
    assert d["box"] == face.box._asdict() and all(isinstance(v, int) for v in d["box"].values())
    assert sum(d["ensemble"]) == pytest.approx(1.0, abs=1e-6)
    assert set(d["models"]) == set(predictor.model_names)
    for name, m in d["models"].items():
        assert sum(m["probabilities"]) == pytest.approx(1.0, abs=1e-6)
        assert (m["label"], m["score"]) == face.top(name)
        assert m["label"] == EMOTIONS[int(np.argmax(m["probabilities"]))]
    np.testing.assert_allclose(d["ensemble"], np.mean([m["probabilities"] for m in d["models"].values()], axis=0))
    assert d["label"] == face.label == EMOTIONS[int(np.argmax(face.ensemble))]
    assert d["score"] == face.score == max(face.ensemble)
    assert d["agree"] == (len({m["label"] for m in d["models"].values()}) == 1)


def test_a_fer_face_reaches_the_network_as_in_evaluation(predictor, tmp_path):
    """One preprocessing path: a 48x48 gray face given to the app with detect=False is fed exactly
    as evaluation feeds a FER2013 image (the data loader's decode, then predict_proba)."""
    faces, _ = synthetic_faces(3, seed=11)
    for i, face in enumerate(faces):
        file = tmp_path / f"PrivateTest_{i}.png"
        Image.fromarray(face).save(file)
        as_evaluated = _decode(file)  # what fer_core.data puts in a Split
        assert np.array_equal(as_evaluated, face)
        for source in (face, file, Image.fromarray(face)):
            (got,) = predictor.predict(source, detect=False)
            assert np.array_equal(got.face, as_evaluated)
            for name, model in predictor.models.items():
                expected = predict_proba(model, as_evaluated[None])[0]
                assert got.probabilities[name] == [float(v) for v in expected]  # exactly


@pytest.mark.parametrize("orientation, turns", [(3, 2), (6, 1), (8, -1)])
def test_exif_orientation_is_applied(predictor, astronaut_jpeg, orientation, turns):
    upright = np.asarray(load_image(astronaut_jpeg))[:400]  # not square, so a turn shows in the size
    stored = np.rot90(upright, k=turns)  # the pixels as a phone would store them
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = _jpeg(stored, exif=exif.tobytes())

    (expected,) = predictor.predict(_jpeg(upright))
    # without the tag the pixels stay as stored: no box lands on the upright face
    untagged = predictor.analyze(_jpeg(stored))
    assert untagged.image.size == (stored.shape[1], stored.shape[0])
    assert all(np.abs(np.subtract(f.box, expected.box)).max() > 4 for f in untagged.faces)

    analysis = predictor.analyze(photo)
    assert analysis.image.size == (512, 400)
    (face,) = analysis.faces
    # boxes are in upright-image pixels (JPEG re-encoding of rotated blocks moves them a pixel or two)
    assert np.abs(np.subtract(face.box, expected.box)).max() <= 4
    assert FACE_X[0] <= face.box.x and face.box.x + face.box.w <= FACE_X[1]


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda jpeg: b"", "empty (0 bytes)"),
        (lambda jpeg: b"hello, this is a text file\n" * 10, "not an image"),
        (lambda jpeg: jpeg[: len(jpeg) // 2], "damaged or truncated"),
        (lambda jpeg: Image.open(io.BytesIO(jpeg[: len(jpeg) // 2])), "damaged or truncated"),
        (lambda jpeg: _png_declaring(30000, 30000), "too large to decode safely"),  # Pillow's guard
        (lambda jpeg: _png_declaring(10000, 8000), "over the 50-megapixel limit"),  # ours, below Pillow's
        (lambda jpeg: object(), "cannot read an image from a object"),
        (lambda jpeg: 42, "cannot read an image from a int"),
        (lambda jpeg: np.zeros((10, 10, 2), np.uint8), "shape (10, 10, 2)"),
        (lambda jpeg: np.zeros((0, 10), np.uint8), "empty"),
        (lambda jpeg: np.full((10, 10), np.nan), "finite values in [0, 1]"),
        (lambda jpeg: np.zeros((10, 10), np.int64), "uint8, uint16 or float"),
    ],
    ids=[
        "zero-bytes",
        "text",
        "truncated-jpeg",
        "truncated-PIL",
        "bomb",
        "too-many-pixels",
        "object",
        "int",
        "two-channels",
        "empty-array",
        "nan",
        "int64",
    ],
)
def test_bad_inputs_raise_invalid_image_error(predictor, astronaut_jpeg, make, fragment):
    with pytest.raises(InvalidImageError) as err:
        predictor.predict(make(astronaut_jpeg))
    assert isinstance(err.value, ValueError)
    assert fragment in str(err.value)


def test_missing_and_oversized_files(predictor, tmp_path, monkeypatch):
    with pytest.raises(InvalidImageError, match="no such file"):
        predictor.predict(tmp_path / "nope.jpg")
    import fer_core.imageio

    monkeypatch.setattr(fer_core.imageio, "MAX_BYTES", 1000)
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(big)
    with pytest.raises(InvalidImageError, match="over the 0 MB limit"):
        predictor.predict(big)
    with pytest.raises(InvalidImageError, match="over the 0 MB limit"):
        predictor.predict(big.read_bytes())


def test_the_sample_photo_is_scikit_images_astronaut(astronaut_jpeg):
    """assets/astronaut.jpg (the app's sample photo, and these tests') is made as assets/README.md says."""
    skimage_data = pytest.importorskip("skimage.data")  # requirements-dev.txt only
    buf = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buf, format="JPEG", quality=92)
    assert astronaut_jpeg == buf.getvalue()


def test_pillow_decompression_guard_stays_on():
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= 50_000_000


def test_the_models_of_a_photo_run_at_once_and_read_as_each_alone(predictor, astronaut_jpeg):
    analysis = predictor.analyze(astronaut_jpeg)
    faces = np.stack([f.face for f in analysis.faces])
    for name, model in predictor.models.items():
        alone = predict_proba(model, faces, temperature=model.temperature, bend=model.bend)
        got = np.array([f.probabilities[name] for f in analysis.faces])
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-9)
    t = analysis.timings_ms
    assert {"decode", "detect", "models", "total", *predictor.models} <= set(t)
    assert all(0 < t[m] <= t["models"] for m in predictor.models) and t["models"] < t["total"]


def test_two_models_are_read_at_the_same_time(monkeypatch):
    import threading

    import fer_core.predict as predict

    meet = threading.Barrier(2, timeout=10)  # breaks (and the test fails) unless two calls overlap

    class Model:
        temperature, bend, labels = 1.0, 0.0, EMOTIONS

        def __init__(self, waits: bool) -> None:
            self.waits = waits

        def __call__(self, x):
            if self.waits:
                meet.wait()
            return np.zeros((len(x), len(EMOTIONS)), np.float32)

    monkeypatch.setattr(predict, "model_workers", lambda: 2)  # as on this 2-core machine, whatever runs the test
    p = predict.Predictor({"a": Model(True), "b": Model(True), "c": Model(False)})
    faces = p.analyze(np.full((64, 64), 128, np.uint8), detect=False).faces
    assert len(faces) == 1 and set(faces[0].probabilities) == {"a", "b", "c"}
    assert np.allclose(faces[0].ensemble, 1 / len(EMOTIONS))


def test_model_calls_at_once_never_exceed_the_pool_whatever_the_number_of_photos():
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import fer_core.predict as predict

    lock, running, peak = threading.Lock(), [0], [0]

    class Model:
        temperature, bend, labels = 1.0, 0.0, EMOTIONS

        def __call__(self, x):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
            return np.zeros((len(x), len(EMOTIONS)), np.float32)

    p = predict.Predictor({"a": Model(), "b": Model(), "c": Model()}, max_concurrent=6, workers=2)
    assert p.workers == 2
    face = np.full((64, 64), 128, np.uint8)
    with ThreadPoolExecutor(6) as sessions:  # six photos at once, three models each
        done = list(sessions.map(lambda _: p.analyze(face, detect=False), range(6)))
    assert all(len(a.faces) == 1 for a in done)
    assert peak[0] == 2  # the pool's bound, reached and never passed
    assert predict.Predictor({"a": Model()}, workers=8).workers == 1  # never more workers than models


@pytest.mark.parametrize("angle", [-12, 8, 15, 20])
def test_a_tilted_face_is_still_found(predictor, astronaut_jpeg, angle):
    # a guard for any change of detector or setting (docs/performance.md: bench-detect)
    turned = Image.open(io.BytesIO(astronaut_jpeg)).rotate(angle, Image.Resampling.BICUBIC, fillcolor=(120, 120, 120))
    (face,) = predictor.predict(_jpeg(np.asarray(turned)))
    cx, cy = face.box.x + face.box.w / 2, face.box.y + face.box.h / 2
    assert 150 <= cx <= 300 and 60 <= cy <= 200


@pytest.mark.parametrize(
    "covered",
    [(0.12, 0.8, 0.88, 1.0), (0.2, 0.75, 0.8, 0.95), (0.0, 0.45, 0.3, 1.0), (0.1, 0.0, 0.9, 0.22)],
    ids=["chin", "lower lip", "left cheek", "forehead"],
)
def test_a_partly_covered_face_is_still_found(predictor, astronaut_jpeg, covered):
    # a guard like the tilted one: a band (a scarf, a hand, a hat) over part of the face, as
    # fractions of the upright face's box (x0, y0, x1, y1); the Haar cascade missed the chin band,
    # and neither cascade finds a face under a band over both eyes or over the whole mouth
    (upright,) = predictor.predict(astronaut_jpeg)
    b = upright.box
    x0, y0, x1, y1 = covered
    photo = load_image(astronaut_jpeg).copy()
    ImageDraw.Draw(photo).rectangle([b.x + x0 * b.w, b.y + y0 * b.h, b.x + x1 * b.w, b.y + y1 * b.h], fill=(50, 50, 50))
    (face,) = predictor.predict(_jpeg(np.asarray(photo)))
    assert abs(face.box.x - b.x) < 0.15 * b.w and abs(face.box.y - b.y) < 0.15 * b.h


def test_the_shipped_cascade_is_the_notice_s_file_and_both_cascades_find_the_astronaut(astronaut_jpeg):
    """The LBP cascade ships in fer_core/cascades/ (the wheels carry only Haar ones): it must be the
    file its NOTICE names, and each selectable cascade must find the one face, in the same place."""
    from fer_core.faces import CASCADE, CASCADES, FaceDetector
    from fer_core.provenance import sha256_file

    notice = Path(CASCADES["lbp"]).with_name("NOTICE.md").read_text()
    assert CASCADE == "lbp" and sha256_file(CASCADES["lbp"]) in notice
    gray = to_gray(load_image(astronaut_jpeg))
    boxes = {name: FaceDetector(cascade=name).detect(gray) for name in CASCADES}
    for name, found in boxes.items():
        assert len(found) == 1, name
    (lbp,), (haar,) = boxes["lbp"], boxes["haar"]
    assert abs(lbp.x + lbp.w / 2 - haar.x - haar.w / 2) < 0.1 * haar.w and 0.8 < lbp.w / haar.w < 1.25
    with pytest.raises(ValueError, match="unknown cascade 'dnn'; choose one of lbp, haar"):
        FaceDetector(cascade="dnn")


def test_a_missing_cascade_file_says_how_to_restore_it(monkeypatch, tmp_path):
    from fer_core import faces

    monkeypatch.setitem(faces.CASCADES, "lbp", str(tmp_path / "gone.xml"))
    with pytest.raises(RuntimeError, match="git checkout fer_core/cascades"):
        faces.FaceDetector()
