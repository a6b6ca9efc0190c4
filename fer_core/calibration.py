"""How sure: calibration of each model (and of the ensemble), and the calibration metrics.

A model's probabilities are softmax(u / T - bend * u**2), u = log_softmax(logits)
(`preprocess.calibrated_softmax`): T > 1 softens, T < 1 sharpens, and bend >= 0 sharpens the
confident faces more than the uncertain ones, which one temperature cannot do (networks trained
with label smoothing are under-confident at the top and over-confident in the middle; see
docs/explain.md). The map is increasing in u, so the argmax never moves and a model's accuracy
is unchanged; bend = 0 is plain temperature scaling. (T, bend) per model is fitted on PublicTest
(`val/`) alone by minimising the negative log-likelihood (`python -m fer_core calibrate`), in the
app's default view (one 48x48 view, no TTA). The ensemble averages the calibrated
probabilities and then applies a temperature of its own, fitted on the same split, to the average:
an average of models that disagree is less confident than it is right. That temperature does not
move the ensemble's argmax either.

The temperatures live in `weights/calibration.json` (schema `fer_core.calibration/1`), each keyed
by the sha256 of the ONNX file it was fitted for: weights that are not the file a temperature was
fitted on are served uncalibrated (T = 1), never with a temperature of other weights. No torch here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_bytes_atomic
from .preprocess import softmax

SCHEMA = "fer_core.calibration/1"
FILE_NAME = "calibration.json"
BINS = 15  # equal-width confidence bins of the expected calibration error and the reliability diagram
FIT_SPLIT = "val"  # PublicTest: temperatures are fitted on it, never on test/ (PrivateTest)
FIT_TTA = "none"  # the app's default view
T_MIN, T_MAX = 0.05, 20.0  # the search range of a temperature
BEND_MAX = 1.0  # the search range of a model's bend is [0, BEND_MAX]
_EPS = 1e-12


def log_probs(probs: np.ndarray) -> np.ndarray:
    """log of (N, K) probabilities, floored so that a stored 0 stays finite."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, None))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): the same as dividing the logits behind `probs` by T (the softmax
    ignores the constant log-sum-exp). Used on an ensemble's average, which has no logits."""
    if temperature == 1.0:
        return np.asarray(probs, dtype=np.float64)
    return softmax(log_probs(probs) / temperature)


def nll(probs: np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    y = np.asarray(y)
    p = np.asarray(probs, dtype=np.float64)[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(p, _EPS, None))))


def brier(probs: np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """Mean over images of the squared distance between the probabilities and the one-hot label."""
    p = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(p.shape[1])[np.asarray(y)]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def reliability(probs: np.ndarray, y: Sequence[int] | np.ndarray, bins: int = BINS) -> dict[str, list]:
    """Top-label reliability diagram: per equal-width bin of confidence (the top probability),
    the images' count, mean confidence and accuracy (None for an empty bin)."""
    p = np.asarray(probs, dtype=np.float64)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == np.asarray(y)
    # bin i holds confidences in (i/bins, (i+1)/bins]; the top probability of 7 classes is > 1/7
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct.astype(float), minlength=bins)
    return {
        "edges": [i / bins for i in range(bins + 1)],
        "count": count.tolist(),
        "confidence": [float(c / n) if n else None for c, n in zip(conf_sum, count, strict=True)],
        "accuracy": [float(a / n) if n else None for a, n in zip(acc_sum, count, strict=True)],
    }


def ece(probs: np.ndarray, y: Sequence[int] | np.ndarray, bins: int = BINS) -> float:
    """Top-label expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
    r = reliability(probs, y, bins)
    n = sum(r["count"])
    gaps = (c * abs(a - m) for c, a, m in zip(r["count"], r["accuracy"], r["confidence"], strict=True) if c)
    return float(sum(gaps) / max(n, 1))


def calibration_metrics(probs: np.ndarray, y: Sequence[int] | np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """ECE, NLL, Brier score, accuracy, mean confidence and the reliability diagram of `probs`."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    return {
        "bins": bins,
        "ece": ece(p, y, bins),
        "nll": nll(p, y),
        "brier": brier(p, y),
        "accuracy": float(np.mean(p.argmax(axis=1) == y)),
        "mean_confidence": float(np.mean(p.max(axis=1))),
        "reliability": reliability(p, y, bins),
    }


def fit_temperature(probs: np.ndarray, y: Sequence[int] | np.ndarray, iterations: int = 80) -> float:
    """The T in [T_MIN, T_MAX] that minimises the NLL of softmax(log(p) / T) on (probs, y).

    The NLL is convex in 1/T (a log-sum-exp of a linear function of it, minus a linear term), so a
    golden-section search over 1/T finds the minimum; 80 steps narrow it to ~1e-15 of the range.
    """
    z, y = log_probs(probs), np.asarray(y)
    if len(y) == 0:
        raise ValueError("fitting a temperature needs at least one labelled image")

    def loss(beta: float) -> float:
        s = z * beta
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]))

    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(iterations):
        if fa < fb:  # the minimum lies in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(b)
    return float(1.0 / ((lo + hi) / 2.0))


def model_nll(log_p: np.ndarray, y: np.ndarray, temperature: float, bend: float) -> float:
    """NLL of softmax(u / T - bend * u**2) for u = `log_p` (log-probabilities)."""
    s = log_p / temperature - bend * log_p * log_p
    s = s - s.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]))


def fit_model_calibration(probs: np.ndarray, y: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """(T, bend) minimising the NLL of a model's single-view probabilities `probs` (at T = 1) on y:
    the temperature alone first (`fit_temperature`), then both together from there, bounded
    (L-BFGS-B over 1/T in [1/T_MAX, 1/T_MIN] and bend in [0, BEND_MAX])."""
    from scipy.optimize import minimize

    u, y = log_probs(probs), np.asarray(y)
    t0 = fit_temperature(probs, y)
    res = minimize(
        lambda v: model_nll(u, y, 1.0 / v[0], v[1]),
        x0=[1.0 / t0, 0.0],
        method="L-BFGS-B",
        bounds=[(1.0 / T_MAX, 1.0 / T_MIN), (0.0, BEND_MAX)],
    )
    beta, bend = (float(v) for v in res.x)
    if not res.success or model_nll(u, y, 1.0 / beta, bend) > model_nll(u, y, t0, 0.0):
        return t0, 0.0  # never worse than the temperature alone
    return 1.0 / beta, bend


# --- the stored temperatures -------------------------------------------------------------------


class CalibrationError(ValueError):
    """weights/calibration.json is unreadable or does not follow its schema."""


@dataclass(frozen=True)
class Calibration:
    """Temperatures fitted for particular weights files (by sha256)."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {temperature, sha256, ...}
    ensemble: dict[str, Any] | None = None  # {temperature, models: {name: sha256}}
    info: dict[str, Any] = field(default_factory=dict)  # fitted_on, metrics, git_commit, created_utc

    def temperature(self, name: str, sha256: str) -> float:
        """`name`'s temperature if it was fitted for the file with this sha256, else 1.0."""
        entry = self.models.get(name)
        return float(entry["temperature"]) if entry and entry["sha256"] == sha256 else 1.0

    def bend(self, name: str, sha256: str) -> float:
        """`name`'s bend if it was fitted for the file with this sha256, else 0.0 (files written
        before bends were fitted have none: plain temperature scaling)."""
        entry = self.models.get(name)
        return float(entry.get("bend", 0.0)) if entry and entry["sha256"] == sha256 else 0.0

    def ensemble_temperature(self, hashes: Mapping[str, str]) -> float:
        """The ensemble's temperature if it was fitted for exactly these models' files, else 1.0."""
        if self.ensemble and dict(self.ensemble["models"]) == dict(hashes):
            return float(self.ensemble["temperature"])
        return 1.0

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **self.info, "models": self.models, "ensemble": self.ensemble}


def calibration_path(weights_dir: str | os.PathLike) -> Path:
    return Path(weights_dir) / FILE_NAME


def _temperature_ok(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and T_MIN <= v <= T_MAX


def parse_calibration(data: Any, source: str = FILE_NAME) -> Calibration:
    """A Calibration from the parsed JSON of a calibration file, or a CalibrationError saying what is wrong."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise CalibrationError(f"{source}: not a {SCHEMA} file")
    models = data.get("models")
    if not isinstance(models, dict):
        raise CalibrationError(f"{source}: 'models' must map model names to their temperatures")
    for name, entry in models.items():
        t, sha = (entry.get("temperature"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
        if not (_temperature_ok(t) and isinstance(sha, str)):
            raise CalibrationError(
                f"{source}: models.{name} needs a temperature in [{T_MIN}, {T_MAX}] and the sha256 of its weights"
            )
        bend = entry.get("bend", 0.0)
        if not (isinstance(bend, (int, float)) and not isinstance(bend, bool) and 0.0 <= bend <= BEND_MAX):
            raise CalibrationError(f"{source}: models.{name}.bend must be a number from 0 to {BEND_MAX}")
    ens = data.get("ensemble")
    if ens is not None and not (
        isinstance(ens, dict)
        and _temperature_ok(ens.get("temperature"))
        and isinstance(ens.get("models"), dict)
        and all(isinstance(v, str) for v in ens["models"].values())
    ):
        raise CalibrationError(f"{source}: 'ensemble' needs a temperature and the sha256 of each of its models")
    info = {k: v for k, v in data.items() if k not in ("schema", "models", "ensemble")}
    return Calibration(models=models, ensemble=ens, info=info)


def load_calibration(weights_dir: str | os.PathLike) -> Calibration:
    """The temperatures stored beside the weights in `weights_dir` (none: an empty Calibration)."""
    path = calibration_path(weights_dir)
    if not path.is_file():
        return Calibration()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CalibrationError(
            f"{path} is not readable JSON ({exc}); restore it (`git checkout {path.parent.name}/`) or fit it "
            "again with `python -m fer_core calibrate`"
        ) from None
    return parse_calibration(data, str(path))


def write_calibration(calibration: Calibration, weights_dir: str | os.PathLike) -> Path:
    data = calibration.to_json()
    parse_calibration(data)  # never write a file the reader would refuse
    return write_bytes_atomic(calibration_path(weights_dir), (json.dumps(data, indent=2) + "\n").encode())
