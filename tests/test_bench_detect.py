"""`python -m fer_core bench-detect`: detection settings compared on photos made from val/ faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_tree

from fer_core import bench_detect, cli
from fer_core.faces import Box

pytest.importorskip("skimage")  # its face-free sample pictures are the backgrounds (a dev requirement)


def test_a_detection_finds_a_face_when_centred_in_it_at_a_face_size():
    truth = [(100, 100, 100, "upright"), (300, 100, 80, "tilted")]
    found = [
        Box(120, 120, 70, 70),  # inside the first face, 0.7 of its side: found
        Box(125, 118, 66, 66),  # the same face again: a false face
        Box(310, 110, 20, 20),  # inside the second, but a fifth of its side: a false face
        Box(500, 300, 60, 60),  # nowhere near a face
    ]
    assert bench_detect.match(found, truth) == ([True, False], 3)
    assert bench_detect.match([], truth) == ([False, False], 0)


def test_photos_are_seeded_and_faces_lie_apart_inside_them():
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    a, b = bench_detect.make_photos(faces, 6, seed=3), bench_detect.make_photos(faces, 6, seed=3)
    assert all(np.array_equal(x["image"], y["image"]) and x["faces"] == y["faces"] for x, y in zip(a, b, strict=True))
    for photo in a:
        assert photo["image"].shape == (bench_detect.HEIGHT, bench_detect.WIDTH) and photo["image"].dtype == np.uint8
        assert 1 <= len(photo["faces"]) <= 3
        for i, (x, y, side, kind) in enumerate(photo["faces"]):
            assert bench_detect.FACE_SIDES[0] <= side <= bench_detect.FACE_SIDES[1] and kind in bench_detect.KINDS
            assert x + side <= bench_detect.WIDTH and y + side <= bench_detect.HEIGHT
            for x2, y2, s2, _ in photo["faces"][i + 1 :]:
                assert x + side <= x2 or x2 + s2 <= x or y + side <= y2 or y2 + s2 <= y  # never overlapping


def test_the_command_compares_every_setting_with_the_shipped_one(tmp_path, capsys):
    data = write_tree(tmp_path / "data", {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]})
    out = tmp_path / "bench_detect.json"
    assert cli.main(["bench-detect", "--data", str(data), "--photos", "4", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == bench_detect.SCHEMA and record["photos"] == 4
    settings = [r["setting"] for r in record["settings"]]
    assert settings[0] == record["shipped"] and len(settings) == len({json.dumps(s) for s in settings}) > 1
    shipped = record["settings"][0]
    assert shipped["real_photos"]["astronaut"] == record["real_photos_faces"]["astronaut"] == 1
    assert shipped["real_photos"]["group"] == 4  # the gallery's group of four, all found by the shipped setting
    assert 0 <= shipped["recall"] <= 1 and shipped["median_ms"] > 0
    assert "(shipped)" in capsys.readouterr().out
    assert cli.main(["bench-detect", "--data", str(data), "--photos", "0", "--out", str(out)]) == 2
