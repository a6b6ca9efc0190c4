"""Saliency: the occlusion maps are right on a model whose answer we know, faithful on real faces
for the shipped models, different per model, bounded per photo, and written by the CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import REPO, real_data_path, run_python
from PIL import Image

from fer_core.explain import (
    MAX_EXPLAINED_FACES,
    PATCH,
    STRIDE,
    explain_face,
    hide_top,
    occluded,
    occlusion_map,
    overlay,
    positions,
)
from fer_core.predict import Predictor
from fer_core.preprocess import predict_proba
from fer_core.registry import list_models
from fer_core.serving import load_models

SHIPPED = REPO / "weights"
HAS_SHIPPED = all((SHIPPED / f"{m}.onnx").is_file() for m in list_models())


class RegionModel:
    """A logits function that answers class 0 in proportion to how bright rows 8..15, columns
    24..31 of the face are, and nothing else: only that square can matter."""

    temperature = 1.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.zeros((len(x), 7), np.float32)
        z[:, 0] = 8.0 * x[:, 0, 8:16, 24:32].mean(axis=(1, 2))
        return z


def test_positions_cover_every_pixel_and_reject_bad_settings():
    for patch, stride in ((PATCH, STRIDE), (8, 4), (12, 8), (5, 5), (48, 1)):
        covered = np.zeros((48, 48), int)
        for y, x in positions(patch, stride):
            covered[y : y + patch, x : x + patch] += 1
        assert covered.min() >= 1, (patch, stride)
    assert len(positions(PATCH, STRIDE)) == 36
    for patch, stride in ((0, 1), (49, 1), (8, 9), (8, 0)):
        with pytest.raises(ValueError, match="patch"):
            positions(patch, stride)


def test_occluded_copies_hide_one_square_each_with_the_faces_mean():
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    copies = occluded(face)
    fill = round(float(face.mean()))
    for copy, (y, x) in zip(copies, positions(), strict=True):
        changed = copy != face
        assert (copy[y : y + PATCH, x : x + PATCH] == fill).all()
        assert not changed[: max(y, 0)].any() and not changed[y + PATCH :].any()


def test_the_map_lights_up_exactly_the_region_the_model_reads():
    face = np.full((48, 48), 40, np.uint8)
    face[8:16, 24:32] = 250  # bright where the model looks: hiding it (mean gray) lowers class 0
    saliency, target = occlusion_map(RegionModel(), face)
    assert target == 0 and saliency.shape == (48, 48) and saliency.dtype == np.float32
    assert saliency[8:16, 24:32].min() > 0.05
    outside = np.ones((48, 48), bool)
    outside[8:16, 24:32] = False
    assert np.abs(saliency[outside]).max() < 1e-6  # nothing else matters to this model


def test_hide_top_hides_the_most_important_fraction():
    face = np.full((48, 48), 200, np.uint8)
    face[24:] = 100  # mean gray 150
    importance = np.zeros((48, 48))
    importance[:4] = 1.0  # 192 pixels = 8.3 %
    hidden = hide_top(face, importance, 192 / face.size)
    assert (hidden[:4] == 150).all() and np.array_equal(hidden[4:], face[4:])
    assert np.array_equal(hide_top(face, importance, 0.0), face)


def test_overlay_is_rgb_and_one_scale_colours_a_weaker_map_less():
    face = np.full((48, 48), 128, np.uint8)
    strong = np.zeros((48, 48), np.float32)
    strong[:24] = 0.4
    weak = strong / 4
    a, b = overlay(face, strong, 0.4, side=96), overlay(face, weak, 0.4, side=96)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert a[10, 10, 0] > b[10, 10, 0]  # red channel: the strong map is redder on the same scale
    assert np.array_equal(overlay(face, np.zeros((48, 48)), 0.0, side=96)[0, 0], overlay(face, weak * 0, 1.0, 96)[0, 0])


def _tiled(astronaut_jpeg: bytes, n: int, cols: int = 4) -> bytes:
    """n copies of the astronaut's face (100x140 crop) in a grid: n faces of the same size."""
    tile = Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB").crop((174, 55, 274, 195))
    rows = -(-n // cols)
    grid = Image.new("RGB", (tile.width * cols, tile.height * rows), (255, 255, 255))
    for i in range(n):
        grid.paste(tile, ((i % cols) * tile.width, (i // cols) * tile.height))
    buf = io.BytesIO()
    grid.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_predictor_explains_at_most_max_faces_per_photo(weights_dir, astronaut_jpeg):
    predictor = Predictor(load_models(weights_dir=weights_dir, threads=1))
    one = predictor.explain(astronaut_jpeg)
    (maps,) = one.maps
    assert set(maps.maps) == set(list_models()) and one.explained == 1 and one.seconds > 0
    assert all(m.shape == (48, 48) and m.dtype == np.float32 for m in maps.maps.values())
    assert maps.targets == {m: int(np.argmax(p)) for m, p in one.analysis.faces[0].probabilities.items()}
    exact = predictor.explain(_tiled(astronaut_jpeg, MAX_EXPLAINED_FACES))
    assert exact.explained == len(exact.analysis.faces) == MAX_EXPLAINED_FACES and None not in exact.maps
    many = predictor.explain(_tiled(astronaut_jpeg, MAX_EXPLAINED_FACES + 1))
    assert len(many.analysis.faces) == MAX_EXPLAINED_FACES + 1
    assert many.explained == MAX_EXPLAINED_FACES and sum(m is None for m in many.maps) == 1
    assert predictor.explain(astronaut_jpeg, max_faces=0).explained == 0
    with pytest.raises(ValueError, match="max_faces"):
        predictor.explain_analysis(one.analysis, max_faces=-1)


def _real_faces(astronaut_jpeg: bytes, predictor: Predictor) -> np.ndarray:
    """The astronaut's face and, where FER2013 is present, 24 PublicTest faces (a fixed sample)."""
    faces = [predictor.analyze(astronaut_jpeg).faces[0].face]
    root = real_data_path()
    if root is not None:
        from fer_core.data import load_fer2013

        val = load_fer2013(root)["val"]
        idx = np.random.default_rng(1).choice(len(val), 24, replace=False)
        faces += list(val.images[np.sort(idx)])
    return np.stack(faces)


@pytest.mark.skipif(not HAS_SHIPPED, reason="no shipped weights")
def test_the_shipped_models_maps_are_faithful_and_their_own(astronaut_jpeg):
    """Hiding a model's top 15 % pixels by its own map lowers its top-class probability more than
    hiding 15 % random pixels; and the three models' maps are not copies of each other."""
    predictor = Predictor.load(SHIPPED)
    rng = np.random.default_rng(0)
    gaps = {m: [] for m in predictor.models}
    corr = []
    for face in _real_faces(astronaut_jpeg, predictor):
        fm = explain_face(predictor.models, face)
        for name, model in predictor.models.items():
            t = fm.targets[name]

            def p(img, model=model, t=t):
                return predict_proba(model, img[None], temperature=model.temperature, bend=model.bend)[0, t]

            own = p(face) - p(hide_top(face, fm.maps[name], 0.15))
            rand = np.mean([p(face) - p(hide_top(face, rng.random((48, 48)), 0.15)) for _ in range(3)])
            gaps[name].append(own - rand)
        flat = [m.ravel() for m in fm.maps.values()]
        corr += [np.corrcoef(a, b)[0, 1] for i, a in enumerate(flat) for b in flat[i + 1 :]]
    for name, g in gaps.items():
        assert np.mean(g) > 0.05, (name, g)  # the astronaut alone: every model's map beats chance
        assert np.mean(np.asarray(g) > 0) >= 0.75, (name, g)
    assert np.nanmean(corr) < 0.9 and max(corr) < 0.999  # related (the same face) but not copies


def test_explain_command_writes_each_faces_files(weights_dir, tmp_path, astronaut_jpeg):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "photo.jpg").write_bytes(astronaut_jpeg)
    (b / "photo.jpg").write_bytes(astronaut_jpeg)
    out = tmp_path / "out"
    proc = run_python(
        "-m", "fer_core", "explain", str(a / "photo.jpg"), str(b / "photo.jpg"), str(tmp_path / "missing.jpg"),
        "--out", str(out), "--weights-dir", str(weights_dir),
    )  # fmt: skip
    assert proc.returncode == 1 and "missing.jpg" in proc.stderr  # the missing file, reported
    assert "1 of 1 face(s) explained" in proc.stdout and "ms per face" in proc.stdout
    for stem in ("photo", "photo-2"):  # the same stem twice: the second does not overwrite the first
        face = np.asarray(Image.open(out / f"{stem}_face1.png"))
        assert face.shape == (48, 48)
        for model in list_models():
            saliency = np.load(out / f"{stem}_face1_{model}.npy", allow_pickle=False)
            assert saliency.shape == (48, 48) and saliency.dtype == np.float32
        strip = np.asarray(Image.open(out / f"{stem}_face1_overlay.png"))
        assert strip.ndim == 3 and strip.shape[1] > 3 * 192
    expected = {f"{s}_face1{x}" for s in ("photo", "photo-2") for x in (".png", "_overlay.png")}
    expected |= {f"{s}_face1_{m}.npy" for s in ("photo", "photo-2") for m in list_models()}
    assert {p.name for p in out.iterdir()} == expected
