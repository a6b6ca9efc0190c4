"""The batch CLI on a folder of 30 images with two garbage files: a run killed part-way (and a torn
last row) is completed by --resume with every image exactly once, failures are reported, and the
output order is the same on every run."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from PIL import Image

from fer_core.batch import (
    IMAGE_SUFFIXES,
    BatchOptions,
    Unreadable,
    csv_header,
    iter_image_files,
    predict_paths,
    read_done,
)
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
        predict_paths([root], Interrupted(predictor, after), BatchOptions(fmt=fmt, output=str(out), progress=False))
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

    assert predict_paths([root], predictor, BatchOptions(fmt="csv", output=str(out), progress=False, resume=True)) == 1
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
        predict_paths([root], predictor, BatchOptions(fmt="csv", output=str(out), progress=False, resume=True))
    out.write_text("file,face\r\na.jpg,0\r\n")
    with pytest.raises(ValueError, match="JSON lines"):
        predict_paths([root], predictor, BatchOptions(fmt="json", output=str(out), progress=False, resume=True))
    with pytest.raises(ValueError, match="-o FILE"):
        predict_paths([root], predictor, BatchOptions(progress=False, resume=True))


def test_output_order_is_deterministic(predictor, folder, tmp_path, capsys):
    root, files = folder
    outs = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    for out in outs:
        assert predict_paths([root], predictor, BatchOptions(output=str(out), progress=False)) == 1
    err = capsys.readouterr().err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 4  # two garbage files, twice
    assert [json.loads(line)["file"] for line in outs[0].read_text().splitlines()] == files
    assert outs[0].read_bytes() == outs[1].read_bytes()


# --- the folder walk: no recursion, and what cannot be read is a row, not a crash -----------------

DEPTH = 1100  # past Python's default recursion limit of 1000


def _png(path: Path) -> None:
    Image.fromarray(np.full((48, 48), 120, dtype=np.uint8)).save(path, format="PNG")


@pytest.fixture
def deep_folder(tmp_path):
    """tmp/deep/d/d/.../d/face.png, DEPTH folders down; removed bottom-up afterwards, since
    shutil.rmtree (which pytest's tmp_path cleanup uses) recurses once per level on Python 3.11."""
    root = bottom = tmp_path / "deep"
    try:
        root.mkdir()
        for _ in range(DEPTH):  # one level at a time: Path.mkdir(parents=True) recurses once per level too
            bottom = bottom / "d"
            bottom.mkdir()
        _png(bottom / "face.png")
        (bottom / "notes.txt").write_text("not an image")
        yield root, bottom / "face.png"
    finally:
        for name in ("face.png", "notes.txt"):
            (bottom / name).unlink(missing_ok=True)
        folder = bottom
        while folder != root:  # the chain of folders; pytest removes `root` and whatever a test put there
            if folder.exists():
                folder.rmdir()
            folder = folder.parent


def test_walk_of_a_folder_1100_levels_deep(deep_folder):
    root, image = deep_folder
    assert list(iter_image_files([root])) == [image]  # os.walk's recursion died with RecursionError here


def test_predict_cli_on_a_folder_1100_levels_deep(deep_folder, weights_dir, tmp_path):
    root, image = deep_folder
    (root / "broken.jpg").symlink_to(root / "missing.jpg")
    out = tmp_path / "faces.csv"
    args = ["-m", "fer_core", "predict", str(root), "--weights-dir", str(weights_dir), "--models", "resnet18"]
    r = run_python(*args, "--format", "csv", "-o", str(out), "--no-progress", "--no-detect", "--threads", "1")
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr  # 1: the broken link is an image that failed
    with open(out, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    by_file = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert list(by_file) == [str(root / "broken.jpg"), str(image)]
    assert "broken symbolic link" in by_file[str(root / "broken.jpg")]["error"]
    assert by_file[str(image)]["error"] == "" and by_file[str(image)]["label"]  # the deep image was read


def test_walk_order_is_the_sorted_os_walk_order(tmp_path):
    for rel in ("b.png", "a.JPG", "z/c.png", "z/y/d.png", "m/e.gif", "m/notes.txt", "m/n/f.tif", "a/g.bmp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    expected = []
    for root, dirs, files in os.walk(tmp_path):  # the order the CLI always had
        dirs.sort()
        expected += [Path(root) / n for n in sorted(files) if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    assert list(iter_image_files([tmp_path])) == expected and len(expected) == 7


def test_walk_reports_what_it_cannot_read(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    (root / "locked").mkdir(parents=True)
    (root / "sub").mkdir()
    _png(root / "ok.png")
    _png(root / "locked" / "hidden.png")
    _png(root / "sub" / "in_sub.png")
    (root / "broken.jpg").symlink_to(root / "gone.jpg")
    (root / "loop_a.jpg").symlink_to(root / "loop_b.jpg")
    (root / "loop_b.jpg").symlink_to(root / "loop_a.jpg")
    (root / "self.png").symlink_to(root / "self.png")
    (root / "link.png").symlink_to(root / "ok.png")  # a link to a file is read, as before
    (root / "linked_dir").symlink_to(root / "sub")  # a link to a folder is not followed, as before
    (root / "dangling_dir").symlink_to(root / "nowhere")  # no image suffix: skipped like notes.txt
    os.mkfifo(root / "pipe.jpg")  # opening it would block the run for good

    real_scandir = os.scandir

    def scandir(path):  # we run as root in CI, where chmod 000 does not stop a read
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    got = list(iter_image_files([root, tmp_path / "missing.jpg"]))
    paths = [str(f) for f in got]
    assert paths == [
        str(root / n) for n in ("broken.jpg", "link.png", "loop_a.jpg", "loop_b.jpg", "ok.png", "pipe.jpg", "self.png")
    ] + [str(root / "locked"), str(root / "sub" / "in_sub.png"), str(tmp_path / "missing.jpg")]
    errors = {f.path.name: f.message for f in got if isinstance(f, Unreadable)}
    assert set(errors) == {"broken.jpg", "loop_a.jpg", "loop_b.jpg", "self.png", "pipe.jpg", "locked"}
    assert "broken symbolic link" in errors["broken.jpg"]
    assert all("symbolic link loop" in errors[n] for n in ("loop_a.jpg", "loop_b.jpg", "self.png"))
    assert "not a regular file" in errors["pipe.jpg"]
    assert "cannot read this folder" in errors["locked"] and "Permission denied" in errors["locked"]
    assert all(m.startswith(str(root)) for m in errors.values())  # each message names its entry


def test_unreadable_entries_become_error_rows(predictor, tmp_path, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    _png(root / "ok.png")
    (root / "broken.jpg").symlink_to(root / "gone.jpg")
    out = tmp_path / "faces.jsonl"
    assert predict_paths([root], predictor, BatchOptions(output=str(out), progress=False, detect=False)) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["file"] for r in rows] == [str(root / "broken.jpg"), str(root / "ok.png")]
    assert "broken symbolic link" in rows[0]["error"] and len(rows[1]["faces"]) == 1
    assert "error: " in capsys.readouterr().err


# --- CSV cells a spreadsheet would run ------------------------------------------------------------

FORMULA_NAMES = ["=SUM(1+1)*cmd|calc.jpg", "+cmd.jpg", "-x.jpg", "@x.jpg", "\tx.jpg", "\rx.jpg"]
GARBAGE_FORMULA = "=HYPERLINK(1)-garbage.png"


def test_batch_csv_neutralises_formula_names_and_resumes_them(predictor, tmp_path, monkeypatch):
    from fer_core.csvsafe import FORMULA_PREFIXES

    monkeypatch.chdir(tmp_path)  # `predict .` writes bare names, so a name is the start of its cell
    for name in FORMULA_NAMES:
        _png(tmp_path / name)
    (tmp_path / GARBAGE_FORMULA).write_bytes(b"not an image")
    out = tmp_path / "out" / "faces.csv"
    out.parent.mkdir()
    csv_run = {"fmt": "csv", "output": str(out), "progress": False, "detect": False}
    assert predict_paths(["."], predictor, BatchOptions(**csv_run)) == 1

    with open(out, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    names = sorted([*FORMULA_NAMES, GARBAGE_FORMULA])
    assert [row[0] for row in rows] == ["'" + n for n in names]  # one row each, every one quoted
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES):
                float(cell)  # only numbers may start like a formula
    (bad,) = [dict(zip(header, row, strict=True)) for row in rows if "garbage" in row[0]]
    assert bad["error"].startswith("'" + GARBAGE_FORMULA) and "not an image" in bad["error"]
    ok = dict(zip(header, rows[0], strict=True))
    assert 0 <= float(ok["score"]) <= 1 and ok["x"] == "0"  # numbers are written as numbers

    # --resume reads the quoted names back as the files they are: nothing is done twice
    done, failed = read_done(out, "csv", header)
    assert done == set(names[:-1]) and failed == 1  # the last file is redone, to be safe
    assert predict_paths(["."], predictor, BatchOptions(**csv_run, resume=True)) == 1
    with open(out, newline="") as fh:
        assert [row[0] for row in list(csv.reader(fh))[1:]] == ["'" + n for n in names]


def test_batch_json_keeps_formula_names_as_they_are(predictor, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in FORMULA_NAMES:
        _png(tmp_path / name)
    out = tmp_path / "faces.jsonl"
    assert predict_paths(["."], predictor, BatchOptions(output=str(out), progress=False, detect=False)) == 0
    assert [json.loads(line)["file"] for line in out.read_text().splitlines()] == sorted(FORMULA_NAMES)
