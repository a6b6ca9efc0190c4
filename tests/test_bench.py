"""The app speed benchmark writes a record the Benchmarks page can read."""

from __future__ import annotations

import json

from fer_core import bench
from fer_core.registry import list_models


def test_bench_writes_record(weights_dir, tmp_path, capsys):
    out = tmp_path / "bench_app.json"
    assert bench.main(["--weights-dir", str(weights_dir), "--out", str(out), "--runs", "3"]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == bench.BENCH_SCHEMA and record["models"] == list_models()
    assert record["photo"]["file"] == "astronaut.jpg"
    lat, cold = record["latency"], record["cold_start"]
    assert lat["runs"] == 3 and lat["faces"] == 1  # the sample photo has one face
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    assert set(list_models()) <= set(lat["stages_median_ms"])
    assert cold["ready_s"] > 0 and cold["models"] == list_models()
    assert record["memory"]["rss_mb"] > 50
    assert "analyze" in capsys.readouterr().out
