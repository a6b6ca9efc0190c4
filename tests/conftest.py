"""Shared fixtures: tiny synthetic FER2013 data in every layout, the real data when present, and
two weights folders: `weights_dir` (tiny ONNX stand-ins, no torch needed: the serving and app
tiers) and `trained_weights_dir` (every registered network trained one step and exported: the
torch tier, marked `torch`)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_onnx import write_tiny_weights

from fer_core.data import FERData, Split
from fer_core.labels import EMOTIONS

REPO = Path(__file__).resolve().parent.parent
TORCH_TIER = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision", "onnx"))


def pytest_collection_modifyitems(config, items):
    # In a venv of requirements.txt alone, the torch tier is skipped with the reason instead of
    # failing on an import (`-m "not torch"` leaves it out altogether).
    if TORCH_TIER:
        return
    skip = pytest.mark.skip(reason="needs torch, torchvision and onnx: pip install -r requirements-dev.txt")
    for item in items:
        if item.get_closest_marker("torch"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Each test session gets its own decode cache, so tests never read a stale one.
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fer-cache"))


def synthetic_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Faces whose class is visible (a bright band at a class-specific row), so tiny models learn."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(EMOTIONS)
    images = rng.integers(0, 80, size=(n, 48, 48), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 + 6 * label : 8 + 6 * label, :] = 230
    return images, labels.astype(np.int64)


def tiny_data(n_train: int = 64, n_val: int = 32, n_test: int = 32) -> FERData:
    splits = {}
    for seed, (name, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        images, labels = synthetic_faces(n, seed)
        splits[name] = Split(images, labels, [f"{name}/{i}.png" for i in range(n)])
    return FERData("synthetic", "folders", splits, [])


@pytest.fixture
def tiny() -> FERData:
    return tiny_data()


def write_tree(root: Path, split_prefixes: dict[str, list[str]], per_class: int = 3, seed: int = 0) -> Path:
    """Class folders with PNG faces: {"train": ["Training"], "test": ["PublicTest", "PrivateTest"]}."""
    rng = np.random.default_rng(seed)
    for split, prefixes in split_prefixes.items():
        for label in EMOTIONS:
            d = root / split / label
            d.mkdir(parents=True, exist_ok=True)
            for prefix in prefixes:
                for i in range(per_class):
                    face = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
                    Image.fromarray(face).save(d / f"{prefix}_{label}_{i}.png")
    return root


def write_csv(path: Path, rows_per_usage: int = 7, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for i in range(rows_per_usage):
            pixels = " ".join(map(str, rng.integers(0, 256, size=48 * 48)))
            lines.append(f"{i % 7},{pixels},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def real_data_path() -> Path | None:
    """FER_DATA (folders, or the original fer2013.csv or a folder holding it), else ../shared/fer2013."""
    for candidate in (os.environ.get("FER_DATA"), REPO.parent / "shared" / "fer2013"):
        if not candidate:
            continue
        path = Path(candidate)
        if (path / "train").is_dir() or (path.is_file() and path.suffix == ".csv") or (path / "fer2013.csv").is_file():
            return path
    return None


@pytest.fixture
def real_data() -> Path:
    path = real_data_path()
    if path is None:
        pytest.skip("FER2013 not found: set FER_DATA to a copy (train/ val/ test/ or fer2013.csv) to run this test")
    return path


ASTRONAUT = REPO / "assets" / "astronaut.jpg"


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    """scikit-image's public-domain NASA astronaut photo (one face, 512x512), as JPEG bytes: the
    app's sample photo, which is that photo saved at quality 92 (test_predict checks it is)."""
    return ASTRONAUT.read_bytes()


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """A `weights/` folder as the app and the API read it (NAME.onnx + NAME.card.json for every
    registered model), of tiny stand-ins that need no torch (tests/tiny_onnx.py): three ~4 KB
    graphs with real exports' metadata, whose readings differ per model. Tests must not write into it."""
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


# The trained test weights are rebuilt when any fer_core source (or this file) changed; otherwise the
# weights a previous test session built (in the ignored .pytest_cache/) are reused.


def _weights_key() -> str:
    import hashlib

    import torch

    h = hashlib.sha256(str(torch.__version__).encode())
    for source in sorted((REPO / "fer_core").glob("*.py")):
        h.update(source.name.encode() + source.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def trained_weights_dir(tmp_path_factory) -> Path:
    """Every registered model trained for one step on tiny synthetic data and exported by torch
    (NAME.onnx + NAME.pt, no cards), for the torch tier's export and checkpoint tests. Built once
    (minutes), then reused from .pytest_cache/ while the code that makes them is unchanged. Tests
    must not write into it."""
    import shutil

    from fer_core.export import export_model
    from fer_core.registry import list_models
    from fer_core.train import TrainConfig, main

    cached = REPO / ".pytest_cache" / "fer-weights" / _weights_key()
    if (cached / "weights").is_dir() and (cached / "runs").is_dir():
        return cached / "weights"
    root = tmp_path_factory.mktemp("weights")
    runs, out = root / "runs", root / "weights"
    data = tiny_data(n_train=16, n_val=8, n_test=8)
    for name in list_models():
        cfg = TrainConfig(model=name, out=str(runs), epochs=1, batch_size=16, lr=0.01, progress=False, threads=2)
        main(cfg, data=data)
        export_model(name, runs, out)
    try:  # keep it for the next session; a concurrent session may have stored it first
        shutil.rmtree(cached.parent, ignore_errors=True)  # older keys: each set is ~0.3 GB
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, cached.with_suffix(".tmp"), dirs_exist_ok=True)
        cached.with_suffix(".tmp").rename(cached)
    except OSError:
        return out
    return cached / "weights"


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory, weights_dir) -> Path:
    """A results/ folder as the Benchmarks page reads it: an ensemble run and a single-model run
    of the tiny weights on synthetic test data, plus speed, load-run and batch-run records and
    the shipped references."""
    import json
    import shutil

    from fer_core.evaluate import evaluate
    from fer_core.report import REFERENCES_FILE
    from fer_core.results import write_run

    out = tmp_path_factory.mktemp("results")
    shutil.copy(REPO / "results" / REFERENCES_FILE, out / REFERENCES_FILE)
    shutil.copy(REPO / "results" / "bench_fer.json", out / "bench_fer.json")  # measured, not made up here
    data = tiny_data(n_train=16, n_val=8, n_test=21)
    for name in ("ensemble", "resnet18"):
        write_run(evaluate(name, "test", data=data, weights_dir=str(weights_dir), threads=1), out)
    bench = {
        "schema": "fer_core.bench/1",
        "created_utc": "2026-01-01T00:00:00Z",
        "models": ["efficientnet_v2_s", "resnet18", "vgg16"],
        "photo": {"file": "astronaut.jpg", "width": 512, "height": 512, "bytes": 74962},
        "cold_start": {"import_s": 0.5, "load_s": 0.7, "ready_s": 1.2, "process_wall_s": 1.4},
        "latency": {
            "runs": 30,
            "faces": 1,
            "median_ms": 40.0,
            "p95_ms": 55.0,
            "stages_median_ms": {"decode": 2.0, "detect": 20.0, "resnet18": 5.0},
        },
        "latency_flip": {"tta": "flip", "runs": 30, "faces": 1, "median_ms": 47.0, "p95_ms": 60.0},
        "memory": {"rss_mb": 300.0},
        "environment": {"cpus": 2},
    }
    (out / "bench_app.json").write_text(json.dumps(bench))
    load = {  # the shape tools/loadrun.py writes
        "schema": "fer_core.loadrun/1",
        "created_utc": "2026-01-01T00:00:00Z",
        "config": {"clients": 20, "seconds": 60, "url": "http://127.0.0.1:1", "server_started": True},
        "photos": 200,
        "latency_ms": {"p50": 4000.0, "p95": 9000.0, "max": 9500.0, "n": 180, "first_photo_median": 12000.0},
        "errors": 0,
        "leaks": 0,
        "rss_mb": {"series": [[0, 150.0], [1, 260.0], [2, 270.0]], "max": 270.0, "levelled": True},
        "cpu": {"server_s": 100.0, "machine_busy_s": 400.0, "server_share": 0.25, "server_ms_per_photo": 500.0},
    }
    (out / "loadrun.json").write_text(json.dumps(load))
    leg = {"wall_s": 10.0, "rss_mb": {"series": [[0, 100.0], [1, 170.0]], "max": 170.0, "levelled": True}}
    batch = {  # the shape tools/batchrun.py writes
        "schema": "fer_core.batchrun/1",
        "created_utc": "2026-01-01T00:00:00Z",
        "images": 10000,
        "images_per_second": 25.0,
        "predict_wall_s": 400.0,
        "peak_rss_mb": 180.0,
        "resumed": True,
        "passed": True,
        "legs": [{**leg, "killed": True}, {**leg, "killed": False}],
        "output": {"errors_reported": 100, "errors_expected": 100, "missing": 0, "misnumbered_or_duplicated": 0},
    }
    (out / "batchrun.json").write_text(json.dumps(batch))
    return out


@pytest.fixture(scope="session")
def checkpoints_dir(trained_weights_dir) -> Path:
    """The fp32 training output (runs/NAME/best.pt) that `trained_weights_dir` was exported from."""
    return trained_weights_dir.parent / "runs"


def run_python(*args: str, timeout: float = 300, env: dict[str, str] | None = None):
    """`python ARGS` in a fresh process from the repository root, as a user would run it."""
    import subprocess
    import sys

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )
