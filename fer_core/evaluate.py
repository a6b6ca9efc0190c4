"""Evaluate exported weights (or a torch checkpoint) on a split and write one results run.

    python -m fer_core evaluate --model resnet18 --split val
    python -m fer_core evaluate --model ensemble --split test --tta flip --out results/
    python -m fer_core evaluate --model resnet18 --weights runs/resnet18/best.pt --split val
    python -m fer_core evaluate --model all --split test --tta tencrop --out results/

`ensemble` is the mean of the registered models' softmax outputs; `all` writes each model's run and
the ensemble's from one pass (each model is read once, not twice). The run (schema in
results/SCHEMA.md) holds metrics, the confusion matrix, per-sample probabilities, the weights'
hashes and the checkpoints' training histories.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np

from . import __version__
from .data import FERData, load_fer2013
from .errors import WeightsError
from .labels import EMOTIONS
from .metrics import classification_metrics
from .preprocess import predict_proba
from .provenance import git_commit, utc_timestamp
from .registry import get_spec, list_models
from .results import SCHEMA, training_record, validate_run
from .runtime import open_weights
from .serving import DEFAULT_WEIGHTS_DIR, default_threads, load_models, weights_path

ENSEMBLE = "ensemble"


def open_models(name: str, weights: str | None = None, weights_dir: str | None = None, threads: int | None = None):
    if name == ENSEMBLE:
        if weights:
            raise ValueError("--weights names one model's file; the ensemble uses every model in --weights-dir")
        # The mean of every model whose weights are in the folder: the ensemble the app serves.
        names = [m for m in list_models() if weights_path(m, weights_dir).is_file()]
        if len(names) < 2:
            raise WeightsError(
                f"an ensemble needs at least two models' weights in {weights_dir or DEFAULT_WEIGHTS_DIR}; "
                f"found {', '.join(n + '.onnx' for n in names) or 'none'}"
            )
        return load_models(names, weights_dir, threads)
    get_spec(name)
    if weights:
        model = open_weights(weights, threads)
        if model.name != name:
            raise ValueError(f"{weights} holds {model.name}, not {name}")
        return {name: model}
    return load_models([name], weights_dir, threads)


def evaluate(
    name: str,
    split: str = "test",
    tta: str = "none",
    data: FERData | str | None = None,
    weights: str | None = None,
    weights_dir: str | None = None,
    threads: int | None = None,
    batch_size: int = 256,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate a model (or the ensemble) and return a validated run (`limit`: first N images)."""
    models = open_models(name, weights, weights_dir, threads)
    data, s = _split(data, split, limit)
    probs, seconds = _predict(models, s, tta, batch_size)
    return _run(name, models, probs, seconds, data, s, split, tta, threads, batch_size)


def evaluate_all(
    split: str = "test",
    tta: str = "none",
    data: FERData | str | None = None,
    weights_dir: str | None = None,
    threads: int | None = None,
    batch_size: int = 256,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The run of every model with weights in `weights_dir` and the run of their ensemble, from one
    pass over the split: the same runs as `evaluate(m)` for each and `evaluate("ensemble")`, for the
    price of the ensemble alone (each model's timing is its own share of that pass)."""
    models = open_models(ENSEMBLE, None, weights_dir, threads)
    data, s = _split(data, split, limit)
    probs, seconds = _predict(models, s, tta, batch_size)
    runs = [
        _run(m, {m: models[m]}, {m: probs[m]}, {m: seconds[m]}, data, s, split, tta, threads, batch_size)
        for m in models
    ]
    return runs + [_run(ENSEMBLE, models, probs, seconds, data, s, split, tta, threads, batch_size)]


def _split(data: FERData | str | None, split: str, limit: int | None):
    if not isinstance(data, FERData):
        data = load_fer2013(data)
    s = data[split]
    if limit is not None:
        s = s.subset(np.arange(min(limit, len(s))))
    return data, s


def _predict(models: dict[str, Any], s, tta: str, batch_size: int):
    probs: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for model_name, model in models.items():
        t0 = time.perf_counter()
        probs[model_name] = predict_proba(model, s.images, tta=tta, batch_size=batch_size)
        seconds[model_name] = time.perf_counter() - t0
    return probs, seconds


def _run(
    name: str,
    models: dict[str, Any],
    probs: dict[str, np.ndarray],
    seconds: dict[str, float],
    data: FERData,
    s,
    split: str,
    tta: str,
    threads: int | None,
    batch_size: int,
) -> dict[str, Any]:
    """One validated run of `name` (a model, or the ensemble of `models`) from its models' probabilities."""
    final = np.mean(list(probs.values()), axis=0)
    metrics = classification_metrics(s.labels, final)
    total = sum(seconds.values())
    samples: dict[str, Any] = {
        "ids": list(s.ids),
        "y_true": s.labels.tolist(),
        "probs": np.round(final, 6).tolist(),
    }
    if len(models) > 1:
        samples["per_model"] = {m: np.round(p, 6).tolist() for m, p in probs.items()}
    records = {m: training_record(model.meta) for m, model in models.items()}
    run = {
        "schema": SCHEMA,
        "name": name,
        "models": list(models),
        "weights": [m.describe() for m in models.values()],
        "data": {
            "source": data.path,
            "layout": data.layout,
            "split": split,
            "n": len(s),
            "notes": data.notes,
        },
        "split": split,
        "tta": tta,
        "labels": list(EMOTIONS),
        "metrics": metrics,
        "samples": samples,
        "history": {m: record[0] for m, record in records.items()},
        "selection": {m: {**record[1], "split": models[m].meta.get("selected_on")} for m, record in records.items()},
        "timing": {
            "seconds": total,
            "per_model_seconds": seconds,
            "images_per_second": len(s) / total if total > 0 else None,
            "backend": type(next(iter(models.values()))).__name__,
            "threads": threads or default_threads(),
            "batch_size": batch_size,
        },
        "environment": environment(),
        "git_commit": git_commit(),
        "created_utc": utc_timestamp(),
    }
    return validate_run(run)


def environment() -> dict[str, Any]:
    import onnxruntime
    import sklearn

    env = {
        "fer_core": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
    }
    torch = sys.modules.get("torch")  # recorded when the run used it; never imported just for this
    if torch is not None:
        env["torch"] = str(torch.__version__)
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
