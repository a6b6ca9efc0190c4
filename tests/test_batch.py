"""The batch CLI on a folder of 30 images with two garbage files: a run killed part-way (and a torn
last row) is completed by --resume with every image exactly once, failures are reported, and the
output order is the same on every run."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from PIL import Image

from fer_core.batch import csv_header, predict_paths, read_done
from fer_core.predict import Predictor

ASTRONAUT = Path(__file__).resolve().parent.parent / "assets" / "astronaut.jpg"
GARBAGE = ("img_05_garbage.jpg", "sub/img_25_garbage.png")


@pytest.fixture(scope="module")
def predictor(weights_dir) -> Predictor:
    return Predictor.load(weights_dir, threads=1)


@pytest.fixture
def folder(tmp_path) -> tuple[Path, list[str]]:
    """30 files, written in shuffled order; returns the folder and its files in walk order."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    names = [f"img_{i:02d}.png" for i in range(20)] + [f"sub/img_{i:02d}.png" for i in range(20, 30)]
    names[5], names[25] = GARBAGE
    names[7], names[22] = "img_07_face.jpg", "sub/img_22_face.jpg"
    rng = np.random.default_rng(3)
    for i in rng.permutation(len(names)):
        path = root / names[i]
        if names[i] in GARBAGE:
            path.write_bytes(b"not an image at all\n" * 5)
        elif names[i].endswith("face.jpg"):
            path.write_bytes(ASTRONAUT.read_bytes())
        else:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8)).save(buf, format="PNG")
            path.write_bytes(buf.getvalue())
    (root / "notes.txt").write_text("not an image suffix: never read")
    walk = sorted(n for n in names if "/" not in n) + sorted(n for n in names if n.startswith("sub/"))
    return root, [str(root / n) for n in walk]


class Interrupted(Predictor):
    """The shared predictor, interrupted (Ctrl-C) after `after` images: a run killed part-way."""

    def __init__(self, inner: Predictor, after: int) -> None:
        super().__init__(inner.models, inner.detector, inner.max_faces)
        self.left = after

    def predict(self, *args, **kw):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().predict(*args, **kw)


def _killed_run(predictor: Predictor, root: Path, out: Path, fmt: str, after: int, torn: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        predict_paths([root], fmt=fmt, output=str(out), progress=False, predictor=Interrupted(predictor, after))
    with open(out, "a", newline="") as fh:
        fh.write(torn)  # SIGKILL in the middle of writing a row


def test_resume_json_lines_after_a_kill(predictor, folder, weights_dir, tmp_path):
    root, files = folder
    out = tmp_path / "faces.jsonl"
    _killed_run(predictor, root, out, "json", after=12, torn='{"file": "' + files[12][:20])
    assert len(out.read_text().splitlines()) == 13  # 12 complete rows (one of them garbage) and the torn one

    args = ["-m", "fer_core", "predict", str(root), "--weights-dir", str(weights_dir), "-o", str(out)]
    r = run_python(*args, "--resume", "--no-progress", "--threads", "1")
    assert r.returncode == 1, r.stderr  # failures recorded before the resume still count
    assert "resuming" in r.stderr and "12 files already done (1 failed)" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and GARBAGE[1] in errors[0] and "Traceback" not in r.stderr

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["file"] for row in rows] == files  # each exactly once, in walk order
    failed = [row["file"] for row in rows if "error" in row]
    assert failed == [str(root / g) for g in GARBAGE] and "not an image" in rows[5]["error"]
    assert {row["file"] for row in rows if row.get("faces")} == {str(root / "img_07_face.jpg"), files[22]}

    again = run_python(*args, "--resume", "--no-progress", "--threads", "1")  # nothing left: no new rows
    assert again.returncode == 1 and "30 files already done (2 failed)" in again.stderr
    assert [json.loads(line)["file"] for line in out.read_text().splitlines()] == files


def test_resume_csv_after_a_kill(predictor, folder, tmp_path, capsys):
    root, files = folder
    out = tmp_path / "faces.csv"
    _killed_run(predictor, root, out, "csv", after=20, torn=files[20] + ",0,1")
    header = csv_header(predictor.model_names)
    done, failed = read_done(out, "csv", header)  # cuts off the torn row, and the last image to be safe
    assert done == set(files[:19]) and failed == 1
    assert out.read_bytes().endswith(b"\r\n")  # the torn row is gone
    assert files[19] not in out.read_text()  # the last complete image is done again, not kept in part
    capsys.readouterr()

    assert predict_paths([root], fmt="csv", output=str(out), progress=False, predictor=predictor, resume=True) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and GARBAGE[1] in errors[0]  # only the garbage file after the resume point
    with open(out, newline="") as fh:
        first, *rows = list(csv.reader(fh))
    assert first == header and all(len(row) == len(header) for row in rows)
    assert [row[0] for row in rows] == files  # one row per face, and one row for an image without faces
    by_file = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_file[files[7]]["face"] == "1" and by_file[files[7]]["label"]  # the astronaut, face 1 as in the app
    assert by_file[files[0]]["face"] == "" and by_file[files[0]]["error"] == ""  # noise: no face, no error
    assert [f for f, row in by_file.items() if row["error"]] == [str(root / g) for g in GARBAGE]


def test_resume_refuses_another_format(predictor, folder, tmp_path):
    root, _ = folder
    out = tmp_path / "faces.csv"
    out.write_text('{"file": "a.jpg", "faces": []}\n')
    with pytest.raises(ValueError, match="CSV header"):
        predict_paths([root], fmt="csv", output=str(out), progress=False, predictor=predictor, resume=True)
    out.write_text("file,face\r\na.jpg,0\r\n")
    with pytest.raises(ValueError, match="JSON lines"):
        predict_paths([root], fmt="json", output=str(out), progress=False, predictor=predictor, resume=True)
    with pytest.raises(ValueError, match="-o FILE"):
        predict_paths([root], progress=False, predictor=predictor, resume=True)


def test_output_order_is_deterministic(predictor, folder, tmp_path, capsys):
    root, files = folder
    outs = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    for out in outs:
        assert predict_paths([root], output=str(out), progress=False, predictor=predictor) == 1
    err = capsys.readouterr().err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 4  # two garbage files, twice
    assert [json.loads(line)["file"] for line in outs[0].read_text().splitlines()] == files
    assert outs[0].read_bytes() == outs[1].read_bytes()
