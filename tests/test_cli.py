"""The command line as a user runs it (a fresh `python -m fer_core` process from the repository
root): usage, the registry, batch prediction with a bad file, evaluation on a CSV data set, and
one-line errors instead of tracebacks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import run_python, write_csv
from PIL import Image

from fer_core import cli
from fer_core.batch import csv_header
from fer_core.errors import DataLayoutError, InvalidImageError, WeightsError
from fer_core.labels import EMOTIONS
from fer_core.registry import list_models
from fer_core.results import parse_run


def fer(*args: str, **kw):
    return run_python("-m", "fer_core", *args, **kw)


def _no_traceback(r) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def test_no_arguments_prints_usage():
    r = fer()
    assert r.returncode != 0
    assert "usage: python -m fer_core" in r.stderr
    for command in cli.COMMANDS:
        assert command in r.stderr
    _no_traceback(r)


def test_every_command_a_user_runs_is_a_subcommand():
    assert set(cli.COMMANDS) == {
        *("train", "evaluate", "calibrate", "export", "predict", "card", "models"),
        *("report", "bench", "bench-train", "data-stats", "explain", "bench-explain", "bench-video"),
        *("quantize", "bench-fer", "bench-detect"),
    }


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_subcommand_has_help(command):
    r = fer(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: python -m fer_core {command}"), r.stdout
    _no_traceback(r)


def test_data_stats_prints_split_sizes_class_counts_and_pixel_statistics(tmp_path):
    data = write_csv(tmp_path / "fer2013.csv", rows_per_usage=7)
    r = fer("data-stats", "--data", str(data))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    one_each = "7 images, per class [1, 1, 1, 1, 1, 1, 1]"  # 7 rows per Usage, codes 0-6
    assert lines[:3] == [f"{split:5s}      {one_each}" for split in ("train", "val", "test")]
    assert lines[3].startswith("train pixel mean 0.") and " std 0." in lines[3] and len(lines) == 4


def test_report_prints_the_results_and_references_tables(results_dir, capsys):
    from fer_core.report import load_references, references_table, results_table
    from fer_core.results import load_runs

    assert cli.main(["report", "--results", str(results_dir)]) == 0
    tables = [results_table(load_runs(results_dir)), references_table(load_references(results_dir))]
    assert capsys.readouterr().out == "\n\n".join(tables) + "\n"


def test_models_lists_the_registry():
    r = fer("models")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list_models()


def test_an_unknown_model_is_refused_with_the_known_names():
    r = fer("train", "--model", "nope")
    assert r.returncode != 0
    assert "nope" in r.stderr and all(name in r.stderr for name in list_models())
    _no_traceback(r)


@pytest.fixture
def photos(tmp_path, astronaut_jpeg):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    (folder / "a_astronaut.jpg").write_bytes(astronaut_jpeg)
    (folder / "more" / "b_garbage.jpg").write_bytes(b"this is not a JPEG\n" * 20)
    (folder / "notes.txt").write_text("not an image suffix: never read")
    return folder


def test_predict_a_folder_as_json_lines(photos, weights_dir, tmp_path):
    out = tmp_path / "faces.jsonl"
    # -X importtime lists every module the process imported: the predict path must not need torch
    r = run_python(
        "-X",
        "importtime",
        "-m",
        "fer_core",
        "predict",
        str(photos),
        "--weights-dir",
        str(weights_dir),
        "-o",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    )
    assert r.returncode == 1, r.stderr  # one file failed
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "b_garbage.jpg" in errors[0] and "not an image" in errors[0]
    _no_traceback(r)
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and "torch" not in imported

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["file"] for row in rows] == [str(photos / "a_astronaut.jpg"), str(photos / "more" / "b_garbage.jpg")]
    (face,) = rows[0]["faces"]
    assert face["label"] in EMOTIONS and set(face["models"]) == set(list_models())
    assert 170 <= face["box"]["x"] <= 290
    assert "not an image" in rows[1]["error"] and "faces" not in rows[1]


def test_predict_a_folder_as_csv(photos, weights_dir, tmp_path):
    out = tmp_path / "faces.csv"
    r = fer(
        "predict",
        str(photos),
        "--weights-dir",
        str(weights_dir),
        "--format",
        "csv",
        "-o",
        str(out),
        "--no-progress",
        "--no-detect",
        "--models",
        "resnet18",
        "vgg16",
    )
    assert r.returncode == 1 and "b_garbage.jpg" in r.stderr
    _no_traceback(r)
    with open(out, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == csv_header(["resnet18", "vgg16"])
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)
    good, bad = (dict(zip(header, row, strict=True)) for row in rows)
    assert good["file"].endswith("a_astronaut.jpg") and good["error"] == ""
    assert (good["x"], good["y"], good["w"], good["h"]) == ("0", "0", "512", "512")  # --no-detect
    assert sum(float(good[f"p_{e}"]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    assert bad["file"].endswith("b_garbage.jpg") and "not an image" in bad["error"] and bad["label"] == ""


def test_predict_no_detect_region_whole_reads_all_of_a_wide_image(weights_dir, tmp_path):
    wide = tmp_path / "wide.png"
    Image.fromarray(np.tile(np.arange(120, dtype=np.uint8), (40, 1))).save(wide)
    boxes = {}
    for region in ("centre", "whole"):
        r = fer("predict", str(wide), "--weights-dir", str(weights_dir), "--no-detect", "--region", region)
        assert r.returncode == 0, r.stderr
        (face,) = json.loads(r.stdout)["faces"]
        boxes[region] = [face["box"][k] for k in "xywh"]
    assert boxes == {"centre": [40, 0, 40, 40], "whole": [0, 0, 120, 40]}


def test_predict_tta_flip_is_recorded_and_changes_the_reading(weights_dir, astronaut_jpeg, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_jpeg)
    lines = {}
    for tta in ("none", "flip"):
        r = fer("predict", str(photo), "--weights-dir", str(weights_dir), "--tta", tta, "--no-progress")
        assert r.returncode == 0, r.stderr
        lines[tta] = json.loads(r.stdout)
        assert lines[tta]["tta"] == tta
    (single,), (flip,) = lines["none"]["faces"], lines["flip"]["faces"]
    assert single["box"] == flip["box"] and single["ensemble"] != flip["ensemble"]


def test_evaluate_a_csv_data_set(weights_dir, tmp_path):
    data = write_csv(tmp_path / "fer2013.csv", rows_per_usage=7)
    out = tmp_path / "results"
    r = fer(
        "evaluate",
        "--model",
        "resnet18",
        "--data",
        str(data),
        "--weights-dir",
        str(weights_dir),
        "--split",
        "test",
        "--out",
        str(out),
        "--threads",
        "1",
    )
    assert r.returncode == 0, r.stderr
    written = out / "resnet18_test_none.json"
    assert str(written) in r.stdout and "accuracy" in r.stdout
    run = parse_run(written.read_bytes())
    assert run["data"]["n"] == 7 and run["data"]["layout"] == "csv" and run["split"] == "test"


def test_evaluate_all_writes_every_models_run_and_the_ensembles(weights_dir, tmp_path):
    data = write_csv(tmp_path / "fer2013.csv", rows_per_usage=5)
    out = tmp_path / "results"
    args = ["evaluate", "--model", "all", "--data", str(data), "--weights-dir", str(weights_dir), "--split", "val"]
    r = fer(*args, "--out", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    names = [*list_models(), "ensemble"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}_val_none.json" for n in names)
    assert r.stdout.count("accuracy") == len(names)
    ens = parse_run((out / "ensemble_val_none.json").read_bytes())
    for name in list_models():
        single = parse_run((out / f"{name}_val_none.json").read_bytes())
        assert single["models"] == [name] and ens["samples"]["per_model"][name] == single["samples"]["probs"]
    bad = fer(*args, "--out", str(tmp_path / "one.json"))
    assert bad.returncode != 0 and "give --out a folder" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--model", "resnet18", "--data", "{tmp}/nowhere"], "error: no FER2013 data at {tmp}/nowhere"),
        pytest.param(
            ["train", "--model", "resnet18", "--data", "{tmp}/nowhere", "--no-progress"],
            "error: no FER2013 data at",
            marks=pytest.mark.torch,  # `train` and `export` import torch before they check their arguments
        ),
        (["evaluate", "--model", "resnet50"], "error: unknown model 'resnet50'; known models: "),
        (["predict", "{tmp}/x.jpg", "--weights-dir", "{tmp}"], "error: no model weights in {tmp}"),
        pytest.param(
            ["export", "--checkpoint", "{tmp}/x.pt"],
            "error: --checkpoint needs --out FILE.onnx",
            marks=pytest.mark.torch,
        ),
    ],
    ids=["missing-data-evaluate", "missing-data-train", "unknown-model", "no-weights", "bad-arguments"],
)
def test_user_errors_are_one_line_without_traceback(args, message, weights_dir, tmp_path):
    fill = lambda s: s.replace("{tmp}", str(tmp_path))  # noqa: E731
    argv = [fill(a) for a in args]
    if argv[0] == "evaluate":
        argv += ["--weights-dir", str(weights_dir), "--out", str(tmp_path / "results")]
    r = fer(*argv)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr  # one line
    assert r.stderr.startswith(fill(message)), r.stderr
    _no_traceback(r)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "error",
    [InvalidImageError("bad photo"), DataLayoutError("bad data"), WeightsError("bad weights"), ValueError("bad")],
)
def test_the_cli_turns_user_errors_into_messages(error, monkeypatch, capsys):
    def fail(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "predict", fail)
    assert cli.main(["predict", "photo.jpg"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {error}\n" and captured.out == ""


def test_train_flags_come_from_the_config_fields():
    """Each TrainConfig flag field is one `train` option, parsed to the field's type; an option not
    given leaves the field's default; the recipe flags (a card's command) are fields too."""
    from dataclasses import fields

    from fer_core.config import TrainConfig, flag_fields, recipe_flags

    parser = cli.build_parser()
    args = parser.parse_args(
        "train --model vgg16 --epochs 3 --lr 0.01 --crop 44 --teacher a.onnx b.onnx --no-progress".split()
    )
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "resume")}
    assert given == {
        "model": "vgg16",
        "epochs": 3,
        "lr": 0.01,
        "crop": 44,
        "teacher": ["a.onnx", "b.onnx"],
        "progress": False,
    }
    cfg = TrainConfig(**given)
    assert cfg.batch_size == 64 and cfg.schedule == "onecycle" and cfg.ema == 0.0  # untouched defaults
    options = {a.dest for a in parser._subparsers._group_actions[0].choices["train"]._actions}
    assert {f.name for f in flag_fields()} <= options
    assert set(recipe_flags()) <= {f.name for f in fields(TrainConfig)} and recipe_flags()[0] == "epochs"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--model", "vgg16", "--epochs", "three"])
