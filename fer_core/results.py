"""The one results writer and reader: evaluation runs as versioned JSON files in results/.

The schema is documented in results/SCHEMA.md; `validate_run` is its executable form and is
used both before writing and when the dashboard reads a file (ours or a user's upload). Files
are JSON only: never pickled, never executed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_bytes_atomic
from .ensemble import NAME as ENSEMBLE_NAME
from .ensemble import mean_probs
from .labels import EMOTIONS
from .registry import model_title

SCHEMA = "fer_core.run/2"  # what evaluate writes: run/1 plus the `calibration` block
READ_SCHEMAS = ("fer_core.run/1", SCHEMA)  # what the reader accepts (run/1: written before calibration)
MAX_RUN_BYTES = 5 * 1024 * 1024  # ~6x the largest stored run (0.85 MB); under the app's 10 MB upload cap
# What one run may hold, so that no file, however small, costs the dashboard more than a stored run
# does: a 1.1 MB run with 30,000 one-row models in its history took 59 s of CPU per page rerun.
MAX_RUN_MODELS = 8  # an ensemble of the three registered models, with room for a user's own
MAX_HISTORY_ROWS = 1000  # epochs of one model's training history (the shipped ones have 30-62)
MAX_RUN_IMAGES = 40_000  # data.n: all of FER2013 is 35,887 images
MAX_RUN_UPLOADS = 4  # run files one visitor may add to the dashboard at once (each parsed once)
PROBABILITY_SUM_TOLERANCE = 1e-3  # rows are stored rounded to 6 decimals: 7 x 5e-7 at most


class RunSchemaError(ValueError):
    """A results file does not follow the documented schema; the message says where."""


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema": str,
    "name": str,  # "resnet18", ..., or "ensemble"
    "models": list,  # the model names whose outputs make the run (one, or the ensemble's)
    "weights": list,  # [{model, file, sha256, bytes, parameters}]
    "data": dict,  # {source, layout, split, n, notes}
    "split": str,
    "tta": str,
    "labels": list,
    "metrics": dict,
    "samples": dict,  # {ids, y_true, probs}
    "history": dict,  # model name -> per-epoch rows of its checkpoint
    "selection": dict,  # model name -> {split, metric, value, epoch}
    "timing": dict,  # {seconds, images_per_second, backend, threads}
    "environment": dict,  # library versions, platform
    "git_commit": (str, type(None)),
    "created_utc": str,
}


def validate_run(run: Any) -> dict[str, Any]:
    """Return `run` if it follows the schema, else raise RunSchemaError saying what is wrong."""
    if not isinstance(run, dict):
        raise RunSchemaError("a run file must hold one JSON object")
    if run.get("schema") not in READ_SCHEMAS:
        raise RunSchemaError(f"schema is {run.get('schema')!r}; expected one of {', '.join(READ_SCHEMAS)}")
    for key, typ in _REQUIRED.items():
        if key not in run:
            raise RunSchemaError(f"missing field {key!r}")
        if not isinstance(run[key], typ):
            raise RunSchemaError(f"field {key!r} has the wrong type ({type(run[key]).__name__})")
    if not run["models"] or not all(isinstance(name, str) for name in run["models"]):
        raise RunSchemaError("models must be a non-empty list of model names")
    if len(run["models"]) > MAX_RUN_MODELS or len(set(run["models"])) != len(run["models"]):
        raise RunSchemaError(f"models must name at most {MAX_RUN_MODELS} different models")
    _check_identity(run)
    labels = run["labels"]
    if labels != list(EMOTIONS):
        raise RunSchemaError(f"labels {labels} differ from {list(EMOTIONS)}")
    k = len(labels)
    # Every container is type-checked before it is indexed: files come from users too, and a
    # malformed one must give a RunSchemaError, never an AttributeError from deep inside.
    m = run["metrics"]
    for key in ("accuracy", "macro", "weighted", "per_class", "confusion_matrix"):
        if key not in m:
            raise RunSchemaError(f"metrics lacks {key!r}")
    if not _number(m["accuracy"], 0, 1):
        raise RunSchemaError("metrics.accuracy must be a number in [0, 1]")
    for avg in ("macro", "weighted"):
        if not isinstance(m[avg], dict):
            raise RunSchemaError(f"metrics.{avg} must be an object")
        for key in ("precision", "recall", "f1"):
            if not _number(m[avg].get(key), 0, 1):
                raise RunSchemaError(f"metrics.{avg}.{key} must be a number in [0, 1]")
    if not isinstance(m["per_class"], dict) or set(m["per_class"]) != set(labels):
        raise RunSchemaError("metrics.per_class must have one entry per label")
    for name, row in m["per_class"].items():
        if not isinstance(row, dict):
            raise RunSchemaError(f"metrics.per_class.{name} must be an object")
        for key in ("precision", "recall", "f1", "specificity"):
            if not _number(row.get(key), 0, 1):
                raise RunSchemaError(f"metrics.per_class.{name}.{key} must be a number in [0, 1]")
        if not isinstance(row.get("support"), int):
            raise RunSchemaError(f"metrics.per_class.{name}.support must be an integer")
    cm = m["confusion_matrix"]
    if (
        not isinstance(cm, list)
        or len(cm) != k
        or any(not isinstance(r, list) or len(r) != k or not all(isinstance(v, int) and v >= 0 for v in r) for r in cm)
    ):
        raise RunSchemaError(f"metrics.confusion_matrix must be {k}x{k} non-negative integers")
    n = run["data"].get("n")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_RUN_IMAGES:
        raise RunSchemaError(f"data.n must be an integer from 1 to {MAX_RUN_IMAGES:,}")
    if sum(map(sum, cm)) != n:
        raise RunSchemaError("data.n must equal the number of images in the confusion matrix")
    s = run["samples"]
    ids, y, probs = s.get("ids"), s.get("y_true"), s.get("probs")
    if not (isinstance(ids, list) and isinstance(y, list) and isinstance(probs, list)):
        raise RunSchemaError("samples must hold the lists ids, y_true and probs")
    if not (len(ids) == len(y) == len(probs) == n):
        raise RunSchemaError("samples.ids, y_true and probs must each have data.n entries")
    if not all(isinstance(i, str) for i in ids):
        raise RunSchemaError("samples.ids must hold strings")
    if any(not isinstance(v, int) or not 0 <= v < k for v in y):
        raise RunSchemaError(f"samples.y_true must hold class indices 0..{k - 1}")
    if not _probability_rows(probs, k):
        raise RunSchemaError(f"samples.probs must hold {k} probabilities in [0, 1] per image")
    if "per_model" in s:
        per_model = s["per_model"]
        if not isinstance(per_model, dict) or set(per_model) != set(run["models"]):
            raise RunSchemaError("samples.per_model must have one entry per model of the run")
        if any(not isinstance(v, list) or len(v) != n or not _probability_rows(v, k) for v in per_model.values()):
            raise RunSchemaError(f"samples.per_model lists must have data.n rows of {k} probabilities")
    if run["schema"] != READ_SCHEMAS[0]:
        _check_calibration(run)
    return run


def _check_calibration(run: dict[str, Any]) -> None:
    """The run/2 `calibration` block: temperatures, and the metrics before (raw) and after."""
    c = run.get("calibration")
    if not isinstance(c, dict):
        raise RunSchemaError("missing field 'calibration' (an object)")
    temps = c.get("temperatures")
    if not isinstance(temps, dict) or set(temps) != set(run["models"]):
        raise RunSchemaError("calibration.temperatures must give one temperature per model of the run")
    if not all(_number(t, 0.01, 100) for t in temps.values()):
        raise RunSchemaError("calibration.temperatures must be numbers from 0.01 to 100")
    bends = c.get("bends")  # optional: runs written before bends were fitted have none (all 0)
    if bends is not None and not (
        isinstance(bends, dict) and set(bends) == set(run["models"]) and all(_number(b, 0, 1) for b in bends.values())
    ):
        raise RunSchemaError("calibration.bends must give each model of the run a number from 0 to 1")
    if c.get("ensemble_temperature") is not None and not _number(c["ensemble_temperature"], 0.01, 100):
        raise RunSchemaError("calibration.ensemble_temperature must be a number from 0.01 to 100, or null")
    for part in ("raw", "calibrated"):
        m = c.get(part)
        if not isinstance(m, dict):
            raise RunSchemaError(f"calibration.{part} must be an object")
        for key, hi in (("ece", 1), ("nll", float("inf")), ("brier", 2), ("accuracy", 1), ("mean_confidence", 1)):
            if not _number(m.get(key), 0, hi):
                raise RunSchemaError(f"calibration.{part}.{key} must be a number from 0 to {hi}")
        r = m.get("reliability")
        bins = m.get("bins")
        if not (isinstance(bins, int) and 1 <= bins <= 100 and isinstance(r, dict)):
            raise RunSchemaError(f"calibration.{part} needs bins (1 to 100) and a reliability object")
        count, conf, acc = r.get("count"), r.get("confidence"), r.get("accuracy")
        if not all(isinstance(v, list) and len(v) == bins for v in (count, conf, acc)):
            raise RunSchemaError(f"calibration.{part}.reliability must hold count, confidence, accuracy per bin")
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in count):
            raise RunSchemaError(f"calibration.{part}.reliability.count must hold non-negative integers")
        if any(v is not None and not _number(v, 0, 1) for v in conf + acc):
            raise RunSchemaError(f"calibration.{part}.reliability values must be in [0, 1] or null")


_HISTORY_NUMBERS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "cpu_seconds")


def _check_identity(run: dict[str, Any]) -> None:
    """weights, history, selection and timing: what the dashboard and the cards index into."""
    models = set(run["models"])
    if len(run["weights"]) > len(models):
        raise RunSchemaError("weights must have at most one entry per model of the run")
    for part in ("history", "selection"):
        if not set(run[part]) <= models:
            raise RunSchemaError(f"{part} may only have entries for the run's models")
    for w in run["weights"]:
        if not isinstance(w, dict) or not isinstance(w.get("model"), str) or not isinstance(w.get("file"), str):
            raise RunSchemaError("each entry of weights must be an object with the strings model and file")
        if not isinstance(w.get("sha256"), (str, type(None))):
            raise RunSchemaError("weights[].sha256 must be a string")
        for key in ("bytes", "parameters"):
            if not (w.get(key) is None or (_number(w[key], 0, float("inf")) and float(w[key]).is_integer())):
                raise RunSchemaError(f"weights[].{key} must be a non-negative integer")
    for model, rows in run["history"].items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RunSchemaError(f"history.{model} must be a list of per-epoch objects")
        if len(rows) > MAX_HISTORY_ROWS:
            raise RunSchemaError(
                f"history.{model} has {len(rows):,} rows; at most {MAX_HISTORY_ROWS:,} epochs are read"
            )
        for r in rows:
            for key in _HISTORY_NUMBERS:
                if r.get(key) is not None and not _number(r[key], float("-inf"), float("inf")):
                    raise RunSchemaError(f"history.{model}[].{key} must be a number")
            for key in ("epoch", "stage"):  # figures count with them: a number, or absent, never null
                if key in r and not (_number(r[key], 1, float("inf")) and float(r[key]).is_integer()):
                    raise RunSchemaError(f"history.{model}[].{key} must be a whole number from 1 up")
    for model, sel in run["selection"].items():
        if not isinstance(sel, dict) or not isinstance(sel.get("split"), (str, type(None))):
            raise RunSchemaError(f"selection.{model} must be an object naming the split that chose it")
    ips = run["timing"].get("images_per_second")
    if ips is not None and not _number(ips, 0, float("inf")):
        raise RunSchemaError("timing.images_per_second must be a non-negative number")
    if not isinstance(run["timing"].get("backend"), (str, type(None))):
        raise RunSchemaError("timing.backend must be a string")


def _probability_rows(rows: list, k: int) -> bool:
    """Each row a distribution: k numbers in [0, 1] that sum to 1."""
    return all(
        isinstance(p, list)
        and len(p) == k
        and all(_number(v, 0, 1) for v in p)
        and abs(sum(p) - 1) <= PROBABILITY_SUM_TOLERANCE
        for p in rows
    )


def _number(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi


def run_filename(run: dict[str, Any]) -> str:
    return f"{run['name']}_{run['split']}_{run['tta']}.json"


def write_run(run: dict[str, Any], path: str | os.PathLike) -> Path:
    """Validate and write a run atomically. `path` is a file, or a folder to name it in."""
    validate_run(run)
    path = Path(path)
    if path.suffix != ".json":
        path = path / run_filename(run)
    return write_bytes_atomic(path, json.dumps(run, separators=(",", ":")).encode())


def parse_run(raw: bytes | str, source: str = "run file") -> dict[str, Any]:
    """Parse and validate run JSON from untrusted bytes (size-capped, JSON only)."""
    if len(raw) > MAX_RUN_BYTES:
        raise RunSchemaError(f"{source} is {len(raw) / 1e6:.1f} MB; run files are at most {MAX_RUN_BYTES / 1e6:.0f} MB")
    try:
        run = json.loads(raw)
    except RecursionError:  # "[[[[..." a few MB deep; json.loads would otherwise crash the reader
        raise RunSchemaError(f"{source} is nested too deeply to be a run file") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of over 4,300 digits
        raise RunSchemaError(f"{source} is not JSON a run can hold: {str(exc)[:200]}") from None
    try:  # a lone surrogate ("\ud800") parses, then fails wherever the text is encoded for display
        json.dumps(run, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RunSchemaError(f"{source} holds text that is not valid Unicode (a lone surrogate)") from None
    try:
        return validate_run(run)
    except RunSchemaError as exc:
        raise RunSchemaError(f"{source}: {exc}") from None


def load_runs(folder: str | os.PathLike = "results") -> list[dict[str, Any]]:
    """Every valid run in a folder (files of other kinds, e.g. benchmarks, are skipped)."""
    runs = []
    for f in sorted(Path(folder).glob("*.json")):
        try:
            raw = f.read_bytes()
            head = raw[:4096]
            if not any(schema.encode() in head for schema in READ_SCHEMAS):
                continue
            run = parse_run(raw, f.name)
        except (RunSchemaError, OSError):  # not a run, or unreadable (a folder, no permission): skip it
            continue
        run["_file"] = f.name
        runs.append(run)
    return runs


def training_chain(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs that made a model, oldest first: its own, after those it was started from (`init`)."""
    chain, node = [], meta
    while node:
        chain.append(node)
        node = node.get("init")
    return chain[::-1]


def training_record(meta: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A model's whole training history and its selection, from its checkpoint or ONNX metadata.

    A model trained in stages (`train --init`) carries the run it started from under "init";
    its epochs come first, numbered on, and every row says its `stage` (1 = from scratch), so a
    learning curve shows all of the training and "best epoch" counts from the first stage.
    """
    chain = training_chain(meta)
    rows: list[dict[str, Any]] = []
    for stage, run in enumerate(chain, start=1):
        offset = len(rows)
        for i, r in enumerate(run.get("history") or []):
            rows.append({**r, "epoch": offset + r.get("epoch", i + 1), "stage": stage})
    best = dict(meta.get("best") or {})
    if len(chain) > 1 and isinstance(best.get("epoch"), int):
        best["stage_epoch"] = best["epoch"]
        best["epoch"] += len(rows) - len(meta.get("history") or [])
    return (rows if len(chain) > 1 else list(meta.get("history") or [])), best


# --- reading runs: titles, histories, model agreement, ensembles of a subset -----------------------


def run_title(run: Mapping[str, Any]) -> str:
    """ "ResNet18", or "Ensemble (EfficientNetV2-S + ResNet18 + VGG16)"."""
    models = list(run.get("models") or [run["name"]])
    if run["name"] == ENSEMBLE_NAME or len(models) > 1:
        return "Ensemble (" + " + ".join(model_title(m) for m in models) + ")"
    return model_title(run["name"])


def collect_histories(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each model's training history, from the first run that carries one (runs of the same
    weights carry the same history, so later copies add nothing)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for model, rows in (run.get("history") or {}).items():
            if rows and model not in out:
                out[model] = list(rows)
    return out


@dataclass(frozen=True)
class Agreement:
    """How often the models name the same expression, and how right they are when they do."""

    n: int
    n_agree: int
    accuracy_agree: float | None  # accuracy of the shared answer, on images where all models agree
    accuracy_disagree: float | None  # accuracy of the ensemble (mean softmax) on the other images

    @property
    def fraction_agree(self) -> float:
        return self.n_agree / self.n if self.n else 0.0


def per_model_probs(run: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-sample probabilities of each model of an ensemble run ({} for a single-model run)."""
    return {m: np.asarray(p, dtype=np.float64) for m, p in (run["samples"].get("per_model") or {}).items()}


def agreement(y_true: Sequence[int] | np.ndarray, probs: Mapping[str, np.ndarray]) -> Agreement:
    """Agreement of the models' top-1 answers, from per-sample probabilities (N, K) per model."""
    if not probs:
        raise ValueError("agreement needs at least one model's probabilities")
    y = np.asarray(y_true)
    preds = np.stack([np.asarray(p).argmax(axis=1) for p in probs.values()])  # (models, N)
    agree = (preds == preds[0]).all(axis=0)
    ensemble = mean_probs(probs.values()).argmax(axis=1)
    n_agree = int(agree.sum())
    n_dis = len(y) - n_agree
    return Agreement(
        n=len(y),
        n_agree=n_agree,
        accuracy_agree=float((preds[0][agree] == y[agree]).mean()) if n_agree else None,
        accuracy_disagree=float((ensemble[~agree] == y[~agree]).mean()) if n_dis else None,
    )


def subset_ensemble(run: Mapping[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Metrics of the mean-softmax ensemble of `models`, computed from an ensemble run's samples."""
    probs = per_model_probs(run)
    missing = [m for m in models if m not in probs]
    if not models or missing:
        raise ValueError(f"choose models from {list(probs)}; missing: {missing}")
    mean = mean_probs(probs[m] for m in models)
    from .metrics import classification_metrics  # scikit-learn: only when asked

    return classification_metrics(run["samples"]["y_true"], mean, labels=run["labels"])
