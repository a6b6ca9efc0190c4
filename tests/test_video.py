"""Video: clips the tests encode themselves (tests/clips.py), through the sampler, the tracker,
the API, the CLI and the bounds."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from clips import encode, moving_face_clip, moving_face_frames

import fer_core.video as video
from fer_core.errors import InvalidImageError, InvalidVideoError
from fer_core.faces import Box
from fer_core.predict import Predictor, csv_header, video_csv, video_json
from fer_core.serving import load_models
from fer_core.video import MAX_FRAME_PIXELS, Tracker, iou, probe, sample_frames


@pytest.fixture(scope="module")
def clip3() -> bytes:
    return moving_face_clip(3.0, 10)  # 30 frames, 640x360, H.264


@pytest.fixture(scope="module")
def predictor(weights_dir) -> Predictor:
    return Predictor(load_models(weights_dir=weights_dir, threads=1))


def test_frames_are_sampled_at_the_rate_by_the_clips_own_times(clip3):
    frames = list(sample_frames(clip3, fps=2))
    assert [f.time_s for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [f.index for f in frames] == list(range(6))
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8 and frames[0].scale == 1.0
    assert len(list(sample_frames(clip3, fps=10))) == 30  # every frame of a 10 fps clip
    assert [round(f.time_s, 1) for f in sample_frames(clip3, fps=3)] == [0.0, 0.4, 0.7, 1.0, 1.4, 1.7, 2.0, 2.4, 2.7]
    info = probe(clip3)
    assert (info.width, info.height) == (640, 360) and info.fps == 10 and info.duration_s == pytest.approx(3.0, abs=0.2)
    for bad in (0, -1, 10.5):
        with pytest.raises(ValueError, match="fps"):
            next(sample_frames(clip3, fps=bad))


def test_large_frames_are_read_at_the_analysis_side():
    big = encode(moving_face_frames(0.2, 10, size=(1920, 1080), side=1260, travel=100), 10)
    (frame, *_) = list(sample_frames(big, fps=10))
    assert max(frame.image.shape[:2]) == video.ANALYSIS_SIDE and frame.scale == pytest.approx(1.5)


def test_one_moving_face_is_one_track_and_boxes_follow_it(predictor, clip3):
    frames = list(predictor.analyze_video(clip3, fps=2))
    assert [f.time_s for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert all(len(f.faces) == 1 for f in frames) and {t for f in frames for t in f.tracks} == {1}
    xs = [f.faces[0].box.x for f in frames]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 150  # the face moved right, the box with it
    assert all(set(f.faces[0].probabilities) == set(predictor.model_names) for f in frames)
    assert all(f.image is None for f in frames)  # no pixels kept unless asked


def test_the_tracker_keeps_people_apart_and_ends_lost_tracks():
    t = Tracker(min_iou=0.3, max_gap_s=1.0)
    left, right = Box(10, 10, 50, 50), Box(300, 10, 50, 50)
    assert t.update([left, right], 0.0) == [1, 2]
    assert t.update([Box(305, 12, 50, 50), Box(14, 10, 50, 50)], 0.5) == [2, 1]  # order of boxes does not matter
    assert t.update([Box(18, 10, 50, 50)], 1.0) == [1]  # the right one not seen ...
    assert t.update([Box(20, 10, 50, 50), Box(300, 10, 50, 50)], 1.6) == [1, 3]  # ... for over 1 s: a new track
    assert t.update([Box(600, 300, 40, 40)], 1.7) == [4]  # no overlap with anyone: a new person
    assert iou(left, left) == 1.0 and iou(left, right) == 0.0 and iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == 1 / 3


def test_hostile_clips_get_a_clear_error(clip3):
    cases = {
        "not a video": b"this is not a clip at all" * 100,
        "empty": b"",
        "truncated header": clip3[:200],
    }
    for name, raw in cases.items():
        with pytest.raises(InvalidVideoError) as err:
            list(sample_frames(raw))
        assert "video" in str(err.value) or "decode" in str(err.value) or "frames" in str(err.value), name
    truncated = clip3[: len(clip3) // 2]  # half the data: either no frame can be read, or the first ones can
    try:
        got = list(sample_frames(truncated, fps=10))
        assert 0 < len(got) < 30
    except InvalidVideoError as exc:
        assert "damaged" in str(exc) or "decode" in str(exc) or "frames" in str(exc)
    assert issubclass(InvalidVideoError, InvalidImageError)  # reported wherever unreadable photos are


def test_bounds_on_bytes_length_samples_and_frame_size(clip3, monkeypatch):
    with pytest.raises(InvalidVideoError, match="MiB"):
        list(sample_frames(clip3, max_bytes=len(clip3) - 1))
    assert list(sample_frames(clip3, max_bytes=len(clip3)))  # at the bound: read
    with pytest.raises(InvalidVideoError, match="longer than 1 s"):
        list(sample_frames(clip3, fps=2, max_seconds=1.0))  # by the decoded frames' times, not the header
    assert len(list(sample_frames(clip3, fps=2, max_seconds=2.9))) == 6  # 2.9 s of clip: frames at 0..2.5 s
    monkeypatch.setattr(video, "MAX_SAMPLES", 6)
    assert len(list(sample_frames(clip3, fps=2))) == 6  # exactly the cap: read ...
    with pytest.raises(InvalidVideoError, match="sampled frames"):
        list(sample_frames(clip3, fps=3))  # ... one more: refused
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 640 * 360 - 1)
    with pytest.raises(InvalidVideoError, match="640x360"):
        list(sample_frames(clip3))  # from the header, before a frame is decoded
    assert MAX_FRAME_PIXELS == 3840 * 2160


def test_memory_stays_flat_over_a_long_clip(predictor):
    """A 60 s clip streamed frame by frame: the Python heap's peak does not grow with its length."""
    long_clip = moving_face_clip(60.0, 10)
    short_clip = moving_face_clip(6.0, 10)

    def peak(raw: bytes) -> tuple[int, int]:
        tracemalloc.start()
        n = sum(1 for _ in predictor.analyze_video(raw, fps=5))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return n, top

    n_short, short = peak(short_clip)
    n_long, long = peak(long_clip)
    assert (n_short, n_long) == (30, 300)
    assert long < short + 8 * 2**20, (short, long)  # ten times the frames, not ten times the memory


def test_exports_have_a_row_per_face_per_frame(predictor, clip3):
    frames = list(predictor.analyze_video(clip3, fps=2))
    models = list(predictor.model_names)
    rows = list(csv.reader(io.StringIO(video_csv("clip.mp4", frames, models).decode())))
    assert rows[0] == csv_header(models) and len(rows) == 1 + 6
    cols = {c: i for i, c in enumerate(rows[0])}
    assert [r[cols["time_s"]] for r in rows[1:]] == ["0.000", "0.500", "1.000", "1.500", "2.000", "2.500"]
    assert {r[cols["track"]] for r in rows[1:]} == {"1"}
    doc = json.loads(video_json("clip.mp4", frames, 2.0))
    assert (
        doc["schema"] == "fer_core.video/1" and len(doc["frames"]) == 6 and doc["frames"][0]["faces"][0]["track"] == 1
    )


def test_predict_command_mixes_photos_and_clips(tmp_path, weights_dir, clip3, astronaut_jpeg):
    (tmp_path / "clip.mp4").write_bytes(clip3)
    (tmp_path / "photo.jpg").write_bytes(astronaut_jpeg)
    (tmp_path / "broken.mp4").write_bytes(clip3[:300])
    out = tmp_path / "faces.csv"
    cmd = [sys.executable, "-m", "fer_core", "predict", str(tmp_path), "--format", "csv", "-o", str(out)]
    r = subprocess.run(
        [*cmd, "--fps", "2", "--weights-dir", str(weights_dir), "--no-progress"], capture_output=True, text=True
    )
    assert r.returncode == 1, r.stderr  # the broken clip failed, the rest went on
    assert "broken.mp4" in r.stderr and "Traceback" not in r.stderr
    rows = list(csv.DictReader(out.open()))
    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"].rsplit("/", 1)[-1], []).append(row)
    assert [r["time_s"] for r in by_file["clip.mp4"]] == ["0.000", "0.500", "1.000", "1.500", "2.000", "2.500"]
    assert {r["track"] for r in by_file["clip.mp4"]} == {"1"}
    (photo,) = by_file["photo.jpg"]
    assert photo["time_s"] == "" and photo["track"] == "" and photo["label"]
    (broken,) = by_file["broken.mp4"]
    assert broken["error"] and not broken["label"]
    lines = subprocess.run(
        [
            sys.executable,
            "-m",
            "fer_core",
            "predict",
            str(tmp_path / "clip.mp4"),
            "--fps",
            "1",
            "--weights-dir",
            str(weights_dir),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    (doc,) = [json.loads(line) for line in lines]
    assert doc["fps"] == 1 and [f["time_s"] for f in doc["frames"]] == [0.0, 1.0, 2.0]
