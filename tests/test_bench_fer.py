"""`python -m fer_core bench-fer`: both engines in their own workers, asked alternately, ratios from one run.

The real `fer` package needs TensorFlow, which the project does not install; here a stand-in
package named `fer` (a fixed reading after a fixed pause) plays its part through a wrapper
interpreter, so the protocol, the alternation and the figures are checked without it.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from fer_core import bench_fer, cli

FAKE_FER = """
import time
class FER:
    def detect_emotions(self, img):
        time.sleep(0.02)
        h, w = img.shape[:2]
        return [{"box": [0, 0, w // 2, h // 2], "emotions": {"happy": 1.0}}]
"""


def _fake_fer_python(tmp_path):
    pkg = tmp_path / "fake" / "fer"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "fer.py").write_text(FAKE_FER)
    wrapper = tmp_path / "fer-python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{tmp_path / "fake"}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def test_without_fer_it_says_how_to_get_it_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FER_PYTHON", raising=False)
    out = tmp_path / "bench_fer.json"
    assert cli.main(["bench-fer", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "pip install fer==25.10.3" in err and not out.exists()
    assert bench_fer.find_fer_python(sys.executable) is None  # an interpreter without fer is refused
    assert bench_fer.find_fer_python(str(tmp_path / "nothing-here")) is None


def test_side_by_side_record(weights_dir, tmp_path, capsys, monkeypatch):
    fer_python = _fake_fer_python(tmp_path)
    monkeypatch.setenv("FER_PYTHON", str(fer_python))
    out = tmp_path / "bench_fer.json"
    assert cli.main(["bench-fer", "--weights-dir", str(weights_dir), "--rounds", "3", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == bench_fer.SCHEMA and record["rounds"] == 3
    assert record["engines"]["fer"]["python"] == str(fer_python)
    photos = record["photos"]
    assert [p["faces"] for p in photos] == [1, 1, 1, 1, 1, 6]  # five one-face photos and a group of six
    for p in photos:
        assert p["faces_found"] == {"ours": p["faces"], "fer": 1}  # our detector finds every face; the stand-in one
        assert p["fer"]["median_ms"] >= 20  # its fixed pause is inside the timed call
        assert p["ratio"] == p["ours"]["median_ms"] / p["fer"]["median_ms"]
    ones = [p["ratio"] for p in photos if p["faces"] == 1]
    r = record["ratios"]
    assert min(ones) <= r["one_face_photo"] <= max(ones) == r["one_face_photo_max"]
    assert r["group_photo"] == [photos[-1]["ratio"]]
    cold, mem = record["cold_start"], record["memory"]
    assert r["cold_start"] == cold["ours"]["process_to_ready_s"] / cold["fer"]["process_to_ready_s"]
    assert r["rss"] == mem["ours"]["rss_mb"] / mem["fer"]["rss_mb"] and mem["ours"]["rss_mb"] > 50
    assert capsys.readouterr().out.rstrip().endswith(f"-> {out}")


def test_the_photo_set(tmp_path):
    shots = bench_fer.photos(tmp_path)
    assert [(s["width"], s["height"]) for s in shots] == [
        (425, 521),
        (512, 512),
        (640, 640),
        (1024, 1024),
        (800, 800),
        (720, 480),
    ]
    assert all(os.path.getsize(s["file"]) > 10_000 for s in shots)
