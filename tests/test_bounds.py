"""Every bound the public app relies on, tested at its edge with the hostile corpus
(tests/hostile_corpus.py): decode work (JPEG scans, TIFF tiles, WebP pixels), aspect ratio and
padding, run files (models, rows, images, number and text types, distributions) and weights
(swapped or corrupted files). Each case is refused fast with a message saying what to do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, run_python
from hostile_corpus import flat_webp, hostile_runs, progressive_jpeg, strip_png, tiled_tiff

import fer_core.faces
import fer_core.imageio as imageio
from fer_core import InvalidImageError, WeightsError
from fer_core.faces import Box, crop_face, one_face
from fer_core.imageio import (
    MAX_ASPECT_RATIO,
    MAX_JPEG_SCANS,
    MAX_TIFF_TILE_BYTES,
    MAX_WEBP_PIXELS,
    jpeg_scan_count,
    load_image,
)
from fer_core.results import MAX_HISTORY_ROWS, MAX_RUN_MODELS, RunSchemaError, parse_run
from fer_core.serving import OnnxModel, load_models

pytestmark = pytest.mark.timeout(300)


# ---- decode work ---------------------------------------------------------------------------------


def test_jpeg_scans_are_counted_from_the_markers():
    assert jpeg_scan_count(progressive_jpeg(64)) == 6  # libjpeg's gray progressive script
    assert jpeg_scan_count(progressive_jpeg(64, mode="RGB")) == 10
    assert jpeg_scan_count((REPO / "assets" / "astronaut.jpg").read_bytes()) == 1  # baseline
    assert jpeg_scan_count(progressive_jpeg(64, extra_scans=100)) == 106


def test_jpeg_scans_refused_past_the_bound_and_read_at_it():
    at = progressive_jpeg(128, extra_scans=MAX_JPEG_SCANS - 6)
    assert jpeg_scan_count(at) == MAX_JPEG_SCANS
    assert load_image(at).size == (128, 128)
    with pytest.raises(InvalidImageError, match=f"{MAX_JPEG_SCANS + 1} scans.*Re-save"):
        load_image(progressive_jpeg(128, extra_scans=MAX_JPEG_SCANS - 5))


def test_a_huge_many_scan_jpeg_is_refused_before_any_decoding():
    """The review's file: 7000x7000 gray, one AC scan repeated 5,000 times (35 s to decode)."""
    raw = progressive_jpeg(7000, extra_scans=5000)
    t0 = time.perf_counter()
    with pytest.raises(InvalidImageError, match="5006 scans"):
        load_image(raw)
    assert time.perf_counter() - t0 < 1.0


def test_tiff_tiles_bounded_by_their_decode_buffer():
    assert load_image(tiled_tiff(64, 64, 64)).size == (64, 64)
    side = int(MAX_TIFF_TILE_BYTES**0.5)  # 8-bit gray: one byte a pixel, so side^2 is the bound itself
    assert load_image(tiled_tiff(64, 64, side)).size == (64, 64)
    with pytest.raises(InvalidImageError, match="46336x46336 tiles"):
        load_image(tiled_tiff(64, 64, 46336))
    with pytest.raises(InvalidImageError, match="tiles"):
        load_image(tiled_tiff(64, 64, side + 16))


def test_webp_pixels_bounded_at_the_edge(monkeypatch):
    monkeypatch.setattr(imageio, "MAX_WEBP_PIXELS", 100 * 100)
    assert load_image(flat_webp(100, 100)).size == (100, 100)
    with pytest.raises(InvalidImageError, match="WebP is read up to"):
        load_image(flat_webp(100, 101))


def test_a_49_megapixel_webp_is_refused_at_the_real_bound():
    assert 7000 * 7000 > MAX_WEBP_PIXELS
    with pytest.raises(InvalidImageError, match="49 megapixels"):
        load_image(flat_webp(7000, 7000))


def test_transparent_images_still_composite_on_white():
    im = load_image(flat_webp(20, 20, "RGBA"))
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (132, 137, 142)  # (10,20,30) at alpha 128 over white


_MEASURE = """
import resource, sys, time
sys.path.insert(0, {repo!r})
from fer_core.imageio import load_image, to_gray
raw = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    to_gray(load_image(raw))
    outcome = "read"
except Exception as exc:
    outcome = type(exc).__name__
print(outcome, time.perf_counter() - t0, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


@pytest.mark.parametrize(
    "name, make",
    [
        ("scans", lambda: progressive_jpeg(7000, extra_scans=2000)),
        ("tiles", lambda: tiled_tiff(64, 64, 46336)),
        ("webp", lambda: flat_webp(7000, 7000)),
        ("png_49mp", lambda: strip_png(7000, 7000)),
        ("png_strip", lambda: strip_png(1, 50_000)),
    ],
)
def test_each_hostile_image_costs_under_10_s_and_1_gb(tmp_path, name, make):
    f = tmp_path / name
    f.write_bytes(make())
    code = _MEASURE.format(repo=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, timeout=60)
    outcome, seconds, mb = out.stdout.split()
    assert outcome in ("read", "InvalidImageError"), out.stderr
    assert float(seconds) < 10 and float(mb) < 1024, (name, outcome, seconds, mb)


# ---- aspect ratio and padding ----------------------------------------------------------------------


def test_aspect_ratio_bound_at_its_edge():
    assert load_image(strip_png(2, 2 * MAX_ASPECT_RATIO)).size == (2, 2 * MAX_ASPECT_RATIO)
    with pytest.raises(InvalidImageError, match=f"up to {MAX_ASPECT_RATIO}:1"):
        load_image(strip_png(2, 2 * MAX_ASPECT_RATIO + 1))
    with pytest.raises(InvalidImageError, match="50000 times longer"):
        load_image(strip_png(1, 50_000))
    with pytest.raises(InvalidImageError, match="longer than it is wide"):
        load_image(np.zeros((1, 1000), np.uint8))


def _record_borders(monkeypatch) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    real = cv2.copyMakeBorder

    def spy(src, top, bottom, left, right, *a, **k):
        out = real(src, top, bottom, left, right, *a, **k)
        sizes.append(out.shape[:2])
        return out

    monkeypatch.setattr(fer_core.faces.cv2, "copyMakeBorder", spy)
    return sizes


def test_whole_image_as_one_face_pads_only_the_48px_face(monkeypatch):
    sizes = _record_borders(monkeypatch)
    gray = np.full((40, 1000), 200, np.uint8)
    gray[:, :500] = 0
    box, face = one_face(gray, "whole")
    assert box == Box(0, 0, 1000, 40) and face.shape == (48, 48)
    assert sizes == [(48, 48)]  # never a 1000x1000 square
    # the picture fills the middle rows, left half dark, right half light; edges are replicated
    assert face[24, 5] < 30 and face[24, 42] > 170


def test_crop_near_the_edge_pads_only_the_crop(monkeypatch):
    sizes = _record_borders(monkeypatch)
    gray = np.zeros((3000, 3000), np.uint8)
    face = crop_face(gray, Box(2950, 2950, 50, 50))
    assert face.shape == (48, 48)
    assert sizes and max(max(s) for s in sizes) <= 60  # the 60-px square, not the 3000-px photo
    with pytest.raises(ValueError, match="outside"):
        crop_face(gray, Box(5000, 5000, 10, 10))


def test_cli_refuses_a_strip_read_whole(weights_dir, tmp_path):
    strip = tmp_path / "strip.png"
    strip.write_bytes(strip_png(1, 50_000))
    t0 = time.perf_counter()
    r = run_python(
        "-m", "fer_core", "predict", str(strip), "--no-detect", "--region", "whole", "--weights-dir", str(weights_dir)
    )
    assert time.perf_counter() - t0 < 30
    assert "Traceback" not in r.stderr
    assert "longer than it is wide" in r.stdout + r.stderr


# ---- run files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_run() -> dict:
    from fer_core.results import load_runs

    runs = [r for r in load_runs(REPO / "results") if r["name"] == "resnet18"]
    assert runs, "the shipped results/ hold resnet18 runs"
    run = {k: v for k, v in runs[0].items() if k != "_file"}
    return run


@pytest.mark.parametrize("case", list(hostile_runs({"models": ["m"], "samples": {"probs": []}, "history": {}})))
def test_hostile_run_files_are_refused_quickly(valid_run, case):
    raw = hostile_runs(valid_run)[case]
    text = raw if isinstance(raw, str) else json.dumps(raw)
    t0 = time.perf_counter()
    with pytest.raises(RunSchemaError):
        parse_run(text.encode("utf-8", "surrogatepass"), "upload.json")
    assert time.perf_counter() - t0 < 2.0


def test_run_bounds_at_their_edges(valid_run):
    run = json.loads(json.dumps(valid_run))
    model = run["models"][0]
    run["history"] = {model: [{"epoch": i + 1, "val_acc": 0.5} for i in range(MAX_HISTORY_ROWS)]}
    parse_run(json.dumps(run))
    run["history"][model].append({"epoch": MAX_HISTORY_ROWS + 1, "val_acc": 0.5})
    with pytest.raises(RunSchemaError, match="at most 1,000"):
        parse_run(json.dumps(run))
    assert MAX_RUN_MODELS >= 4  # an ensemble of the three registered models fits


def test_what_validation_accepts_renders(valid_run):
    """Accepted runs with staged histories, missing epochs and odd (valid) text all make figures."""
    from fer_core.results import collect_histories
    from ui.figures import history_figure
    from ui.tables import summary_rows

    run = json.loads(json.dumps(valid_run))
    model = run["models"][0]
    run["history"] = {model: [{"stage": 1, "val_acc": 0.4}, {"epoch": 2, "stage": 2, "val_acc": 0.5}, {}]}
    run["name"] = "\u202e<b>x</b>"
    accepted = parse_run(json.dumps(run))
    history_figure(collect_histories([accepted])).to_json()
    summary_rows([accepted])


# ---- weights ----------------------------------------------------------------------------------------


def _card(folder: Path, name: str) -> None:
    from fer_core.provenance import sha256_file

    onnx = folder / f"{name}.onnx"
    card = {"files": {"onnx": {"file": onnx.name, "sha256": sha256_file(onnx), "bytes": onnx.stat().st_size}}}
    (folder / f"{name}.card.json").write_text(json.dumps(card))


def test_a_model_copied_over_another_is_refused(weights_dir, tmp_path):
    shutil.copy(weights_dir / "vgg16.onnx", tmp_path / "resnet18.onnx")
    with pytest.raises(WeightsError, match="holds the vgg16 network.*not resnet18"):
        load_models(["resnet18"], tmp_path)


def test_flipped_bytes_are_refused_by_the_cards_hash(weights_dir, tmp_path):
    shutil.copy(weights_dir / "resnet18.onnx", tmp_path / "resnet18.onnx")
    _card(tmp_path, "resnet18")
    assert load_models(["resnet18"], tmp_path)["resnet18"].name == "resnet18"
    f = tmp_path / "resnet18.onnx"
    raw = bytearray(f.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 4096] = bytes(b ^ 0xFF for b in raw[middle : middle + 4096])
    f.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="not the file its card records.*git checkout"):
        load_models(["resnet18"], tmp_path)
    (tmp_path / "resnet18.card.json").write_text("[" * 100_000)
    with pytest.raises(WeightsError, match="not a readable model card"):
        OnnxModel(f)


def test_the_shipped_weights_match_their_cards():
    models = load_models(weights_dir=REPO / "weights")
    assert set(models) == {"efficientnet_v2_s", "resnet18", "vgg16"}
    for name, model in models.items():
        card = json.loads((REPO / "weights" / f"{name}.card.json").read_text())
        assert model.sha256 == card["files"]["onnx"]["sha256"]


def test_the_hostile_images_through_the_batch_cli(weights_dir, tmp_path):
    """Each bounded class is an error row of the batch CLI, with its reason, and the run completes."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scans.jpg").write_bytes(progressive_jpeg(1024, extra_scans=500))
    (folder / "strip.png").write_bytes(strip_png(1, 50_000))
    (folder / "big.webp").write_bytes(flat_webp(7000, 7000))
    (folder / "tiles.tif").write_bytes(tiled_tiff(64, 64, 46336))
    out = tmp_path / "out.json"
    t0 = time.perf_counter()
    r = run_python("-m", "fer_core", "predict", str(folder), "--weights-dir", str(weights_dir), "-o", str(out))
    assert time.perf_counter() - t0 < 60, r.stderr
    assert "Traceback" not in r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]  # JSON lines
    assert len(rows) == 4, rows
    text = json.dumps(rows)
    for words in ("scans", "longer than it is wide", "WebP is read up to", "tiles"):
        assert words in text, (words, text[:2000])
