"""The speed benchmarks (`python -m fer_core bench` and `bench-train`) write records the Benchmarks page can read."""

from __future__ import annotations

import json

import pytest

from fer_core import bench, cli
from fer_core.registry import list_models


def test_bench_writes_record(weights_dir, tmp_path, capsys):
    out = tmp_path / "bench_app.json"
    assert cli.main(["bench", "--weights-dir", str(weights_dir), "--out", str(out), "--runs", "3"]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == bench.BENCH_SCHEMA and record["models"] == list_models()
    assert record["photo"]["file"] == "astronaut.jpg"
    assert (record["photo"]["width"], record["photo"]["height"]) == (640, 640)  # resized to the 640-px case
    lat, cold = record["latency"], record["cold_start"]
    assert lat["runs"] == 3 and lat["faces"] == 1  # the sample photo has one face
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    assert set(list_models()) <= set(lat["stages_median_ms"])
    flip = record["latency_flip"]  # the app's mirror toggle: each face read twice
    assert (lat["tta"], flip["tta"]) == ("none", "flip") and flip["runs"] == 3 and flip["faces"] == 1
    assert 0 < flip["min_ms"] <= flip["median_ms"] <= flip["max_ms"]
    seq = record["latency_one_model_at_a_time"]  # the same photo with the models run one after the other
    assert seq["runs"] == 3 and seq["faces"] == 1 and set(list_models()) <= set(seq["stages_median_ms"])
    assert record["environment"]["model_workers"] >= 1
    assert cold["ready_s"] > 0 and cold["models"] == list_models()
    assert record["memory"]["rss_mb"] > 50
    printed = capsys.readouterr().out
    assert "analyze" in printed and printed.rstrip().endswith(f"-> {out}")


@pytest.mark.torch
def test_bench_train_times_the_real_training_step(tmp_path, capsys):
    from fer_core import bench_train

    out = tmp_path / "bench_train.json"
    argv = ["bench-train", "--model", "resnet18", "--steps", "2", "--batch-size", "8", "--out", str(out)]
    assert cli.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == bench_train.BENCH_SCHEMA
    (row,) = record["models"]
    assert row["model"] == "resnet18" and row["steps_timed"] == 2 and row["batch_size"] == 8
    assert row["seconds_per_step"] > 0 and row["cpu_seconds_per_step"] > 0
    assert row["minutes_per_epoch"] == row["seconds_per_step"] * (28_709 // 8) / 60
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"resnet18: {row['seconds_per_step'] * 1000:.0f} ms/step -> {row['minutes_per_epoch']:.2f} min/epoch",
        f"-> {out}",
    ]
