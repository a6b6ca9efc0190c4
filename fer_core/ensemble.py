"""The ensemble rule, in one place: the mean of the models' softmax outputs.

Used wherever an ensemble is formed: the app and the API (`predict`), evaluation runs
(`evaluate`) and the dashboard's agreement and model-subset figures (`results`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

NAME = "ensemble"  # how runs, CSV rows and the CLI name it


def mean_probs(probs: Iterable[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities: the mean of each model's (N, K) probabilities (at least one)."""
    stack = [np.asarray(p) for p in probs]
    if not stack:
        raise ValueError("an ensemble needs at least one model's probabilities")
    if any(p.shape != stack[0].shape for p in stack):
        raise ValueError(f"models' probabilities differ in shape: {[p.shape for p in stack]}")
    return np.mean(stack, axis=0)
