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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import __version__, ensemble
from .calibration import (
    FIT_SPLIT,
    FIT_TTA,
    Calibration,
    apply_temperature,
    calibration_metrics,
    fit_model_calibration,
    fit_temperature,
    log_probs,
)
from .data import FERData, Split, load_fer2013
from .ensemble import combine, mean_probs
from .errors import WeightsError
from .labels import EMOTIONS
from .metrics import classification_metrics
from .preprocess import calibrated_softmax, predict_proba_at
from .provenance import git_commit, utc_timestamp
from .registry import get_spec, list_models
from .results import SCHEMA, training_record, validate_run
from .runtime import open_weights
from .serving import DEFAULT_WEIGHTS_DIR, default_threads, ensemble_temperature, load_models, weights_path

ENSEMBLE = ensemble.NAME


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
    return make_run(name, models, collect(models, data, split, tta, threads, batch_size, limit))


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
    preds = collect(models, data, split, tta, threads, batch_size, limit)
    return [make_run(m, {m: models[m]}, preds.only(m)) for m in models] + [make_run(ENSEMBLE, models, preds)]


@dataclass(frozen=True)
class Predictions:
    """One pass of some models over a split: each model's probabilities, how long each took, and
    what was read and how (what a run records besides its metrics)."""

    data: FERData
    split_name: str
    split: Split  # the images read: the split, or its first `limit` images
    tta: str
    threads: int | None
    batch_size: int
    probs: dict[str, np.ndarray]  # model name -> (N, 7) softmax at the model's temperature (as served)
    seconds: dict[str, float]  # model name -> seconds its pass took
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # model name -> (N, 7) softmax at T = 1
    temperatures: dict[str, float] = field(default_factory=dict)  # model name -> its temperature
    bends: dict[str, float] = field(default_factory=dict)  # model name -> its bend

    def only(self, name: str) -> Predictions:
        """The same pass, as if `name` had been the only model read."""
        return replace(
            self,
            probs={name: self.probs[name]},
            seconds={name: self.seconds[name]},
            raw={name: self.raw[name]},
            temperatures={name: self.temperatures[name]},
            bends={name: self.bends[name]},
        )


def collect(
    models: dict[str, Any],
    data: FERData | str | None,
    split: str,
    tta: str,
    threads: int | None = None,
    batch_size: int = 256,
    limit: int | None = None,
) -> Predictions:
    """Every model's probabilities on `split` of `data` (loaded if given as a path), timed one model at a time."""
    if not isinstance(data, FERData):
        data = load_fer2013(data)
    s = data[split]
    if limit is not None:
        s = s.subset(np.arange(min(limit, len(s))))
    probs: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    temperatures = {name: float(model.temperature) for name, model in models.items()}
    bends = {name: float(getattr(model, "bend", 0.0)) for name, model in models.items()}
    for model_name, model in models.items():
        t0 = time.perf_counter()
        raw[model_name], probs[model_name] = predict_proba_at(
            model, s.images, ((1.0, 0.0), (temperatures[model_name], bends[model_name])), tta, batch_size
        )
        seconds[model_name] = time.perf_counter() - t0
    return Predictions(data, split, s, tta, threads, batch_size, probs, seconds, raw, temperatures, bends)


def make_run(name: str, models: dict[str, Any], preds: Predictions) -> dict[str, Any]:
    """One validated run of `name` (a model, or the ensemble of `models`): the metrics of the
    probabilities the app serves (each model's at its temperature; an ensemble's, their mean at the
    ensemble's temperature), the calibration before and after, the samples, the weights' training
    records and the timing."""
    t_ensemble = ensemble_temperature(models) if len(models) > 1 else None
    final = combine(preds.probs.values(), t_ensemble or 1.0)
    raw = mean_probs(preds.raw.values())
    y = preds.split.labels
    records = {m: training_record(model.meta) for m, model in models.items()}
    run = {
        "schema": SCHEMA,
        "name": name,
        "models": list(models),
        "weights": [m.describe() for m in models.values()],
        "data": {
            "source": preds.data.path,
            "layout": preds.data.layout,
            "split": preds.split_name,
            "n": len(preds.split),
            "notes": preds.data.notes,
        },
        "split": preds.split_name,
        "tta": preds.tta,
        "labels": list(EMOTIONS),
        "metrics": classification_metrics(y, final),
        "calibration": {
            "temperatures": dict(preds.temperatures),
            "bends": dict(preds.bends),
            "ensemble_temperature": t_ensemble,
            "raw": calibration_metrics(raw, y),  # every temperature 1: the networks' own softmax
            "calibrated": calibration_metrics(final, y),  # what `metrics` and `samples` hold
        },
        "samples": _samples(preds, final),
        "history": {m: record[0] for m, record in records.items()},
        "selection": {m: {**record[1], "split": models[m].meta.get("selected_on")} for m, record in records.items()},
        "timing": _timing(preds, type(next(iter(models.values()))).__name__),
        "environment": environment(),
        "git_commit": git_commit(),
        "created_utc": utc_timestamp(),
    }
    return validate_run(run)


def calibrate(
    data: FERData | str | None = None,
    weights_dir: str | None = None,
    threads: int | None = None,
    limit: int | None = None,
) -> Calibration:
    """Fit each model's temperature and the ensemble's on PublicTest (`val/`, the app's default
    view), for the ONNX files in `weights_dir`: a Calibration to write beside them. PrivateTest is
    never read. Each model's T minimises its NLL; the ensemble's T then minimises the NLL of the
    mean of the calibrated models (with one model, there is no ensemble temperature)."""
    folder = weights_dir or DEFAULT_WEIGHTS_DIR
    names = [m for m in list_models() if weights_path(m, folder).is_file()]
    if not names:
        raise WeightsError(f"no ONNX weights in {folder} to calibrate; export them first")
    models = load_models(names, folder, threads)
    preds = collect(models, data, FIT_SPLIT, FIT_TTA, threads, limit=limit)
    y = preds.split.labels
    entries: dict[str, dict[str, Any]] = {}
    metrics: dict[str, dict[str, Any]] = {}
    calibrated: dict[str, np.ndarray] = {}

    def summary(p: np.ndarray) -> dict[str, float]:
        full = calibration_metrics(p, y)
        return {k: round(full[k], 6) for k in ("ece", "nll", "brier", "accuracy", "mean_confidence")}

    for name, model in models.items():
        t, bend = fit_model_calibration(preds.raw[name], y)
        t, bend = round(t, 6), round(bend, 6)
        # exact: one view, so log p = log_softmax(z)
        calibrated[name] = calibrated_softmax(log_probs(preds.raw[name]), t, bend)
        entries[name] = {"temperature": t, "bend": bend, "sha256": model.sha256, "file": model.path.name}
        metrics[name] = {"raw": summary(preds.raw[name]), "calibrated": summary(calibrated[name])}
    ensemble_entry = None
    if len(models) > 1:
        mean = mean_probs(calibrated.values())
        t = fit_temperature(mean, y)
        ensemble_entry = {"temperature": round(t, 6), "models": {m: models[m].sha256 for m in models}}
        metrics[ENSEMBLE] = {
            "raw": summary(mean_probs(preds.raw.values())),
            "calibrated": summary(apply_temperature(mean, t)),
        }
    info = {
        "fitted_on": {
            "split": FIT_SPLIT,
            "tta": FIT_TTA,
            "n": len(preds.split),
            "layout": preds.data.layout,
            "criterion": "negative log-likelihood",
        },
        "metrics": {FIT_SPLIT: metrics},
        "git_commit": git_commit(),
        "created_utc": utc_timestamp(),
    }
    return Calibration(models=entries, ensemble=ensemble_entry, info=info)


def _samples(preds: Predictions, final: np.ndarray) -> dict[str, Any]:
    """Per image: its id, true label and the run's probabilities (and each model's, for an ensemble)."""
    samples: dict[str, Any] = {
        "ids": list(preds.split.ids),
        "y_true": preds.split.labels.tolist(),
        "probs": np.round(final, 6).tolist(),
    }
    if len(preds.probs) > 1:
        samples["per_model"] = {m: np.round(p, 6).tolist() for m, p in preds.probs.items()}
    return samples


def _timing(preds: Predictions, backend: str) -> dict[str, Any]:
    total = sum(preds.seconds.values())
    return {
        "seconds": total,
        "per_model_seconds": preds.seconds,
        "images_per_second": len(preds.split) / total if total > 0 else None,
        "backend": backend,
        "threads": preds.threads or default_threads(),
        "batch_size": preds.batch_size,
    }


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
