"""The ensemble rule, in one place: the mean of the models' (calibrated) softmax outputs, then the
ensemble's own temperature (fer_core.calibration), which sharpens or softens the average without
moving its argmax.

Used wherever an ensemble is formed: the app and the API (`predict`), evaluation runs
(`evaluate`) and the dashboard's agreement and model-subset figures (`results`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .calibration import apply_temperature

NAME = "ensemble"  # how runs, CSV rows and the CLI name it


def mean_probs(probs: Iterable[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities: the mean of each model's (N, K) probabilities (at least one)."""
    stack = [np.asarray(p) for p in probs]
    if not stack:
        raise ValueError("an ensemble needs at least one model's probabilities")
    if any(p.shape != stack[0].shape for p in stack):
        raise ValueError(f"models' probabilities differ in shape: {[p.shape for p in stack]}")
    return np.mean(stack, axis=0)


def combine(probs: Iterable[np.ndarray], temperature: float = 1.0) -> np.ndarray:
    """The served ensemble: `mean_probs`, then softmax(log(mean) / temperature)."""
    return apply_temperature(mean_probs(probs), temperature)
