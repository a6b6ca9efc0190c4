"""The load-run and batch-run tools: their verdicts can fail, and the batch run works end to end
(a corpus with broken files, the CLI killed part-way and resumed, every image exactly once)."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from tools.batchrun import KINDS, check_output, plan
from tools.batchrun import main as batchrun
from tools.loadrun import levelled, percentile


def test_levelled_tells_flat_from_climbing_memory():
    ramp_then_flat = [(t, min(100 + 50 * t, 300) + (t % 3)) for t in range(30)]
    assert levelled(ramp_then_flat)["levelled"] is True
    climbing = [(t, 100 + 10 * t) for t in range(30)]
    verdict = levelled(climbing)
    assert verdict["levelled"] is False
    assert verdict["last_third_max_mb"] > verdict["middle_third_max_mb"] * 1.1
    assert levelled([(0, 1.0), (1, 2.0)])["levelled"] is None


def test_percentile_is_inclusive_and_handles_small_samples():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([0.0, 100.0], 95) == 95.0  # interpolated between the two samples
    assert percentile(list(map(float, range(1, 101))), 50) == 50.5


def test_plan_is_deterministic_and_keeps_the_mix():
    a, b = plan(1000, seed=1), plan(1000, seed=1)
    assert a == b and a != plan(1000, seed=2)
    counts = Counter(kind for _, kind in a)
    assert counts == {kind: round(1000 * share) for kind, share in KINDS}
    assert len({stem for stem, _ in a}) == 1000
    assert all(stem.startswith(f"{i // 100:03d}/") for i, (stem, _) in enumerate(a))


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "face", "x", "error"])
        w.writerows(rows)


def test_check_output_catches_missing_duplicated_and_wrong_errors(tmp_path):
    files = {"a.jpg": "photo", "b.jpg": "group", "c.jpg": "broken", "d.jpg": "noface"}
    good = tmp_path / "good.csv"
    _write(
        good,
        [["a.jpg", 1, 1, ""], ["b.jpg", 1, 1, ""], ["b.jpg", 2, 2, ""]]
        + [["c.jpg", "", "", "bad"], ["d.jpg", "", "", ""]],
    )
    check = check_output(good, files)
    assert check["missing"] == check["unexpected"] == check["misnumbered_or_duplicated"] == 0
    assert check["errors_match_broken_files"] and check["errors_reported"] == 1
    assert check["faces_by_kind"] == {"photo": 1, "group": 2, "broken": 0, "noface": 0}

    bad = tmp_path / "bad.csv"  # b's face 1 twice, d missing, a reported as an error, e unknown
    _write(
        bad,
        [["a.jpg", 1, 1, "x"], ["b.jpg", 1, 1, ""], ["b.jpg", 2, 2, ""], ["b.jpg", 2, 2, ""]]
        + [["c.jpg", "", "", "bad"], ["e.jpg", "", "", ""]],
    )
    check = check_output(bad, files)
    assert check["missing"] == 1 and check["missing_samples"] == ["d.jpg"]
    assert check["unexpected"] == 1 and check["misnumbered_or_duplicated"] == 1
    assert not check["errors_match_broken_files"]


@pytest.mark.slow  # 150 images through the CLI twice, and a SIGKILL between
def test_batchrun_kills_resumes_and_accounts_for_every_image(weights_dir, tmp_path, capsys):
    out = tmp_path / "batchrun.json"
    rc = batchrun(["--images", "150", "--kill-at", "0.3", "--weights-dir", str(weights_dir), "--out", str(out)])
    record = json.loads(out.read_text())
    assert rc == 0 and record["passed"], capsys.readouterr().out
    assert record["schema"] == "fer_core.batchrun/1"
    first, second = record["legs"]
    assert first["killed"] and first["exit_status"] == -9
    assert 45 <= record["rows_at_kill"] < 150  # killed part-way, not at the end
    assert second["exit_status"] == 1  # some images (the broken ones) failed
    assert record["resumed"] and record["progress_bar"]
    c = record["output"]
    assert c["files_in_output"] == 150 and c["missing"] == 0 and c["misnumbered_or_duplicated"] == 0
    assert c["errors_reported"] == c["errors_expected"] == record["kinds"]["broken"] >= 1
    assert c["faces_by_kind"]["noface"] == 0
    assert c["images_with_a_face_by_kind"]["photo"] > 0.5 * record["kinds"]["photo"]
    assert second["rss_mb"]["series"] and record["peak_rss_mb"] > 50
