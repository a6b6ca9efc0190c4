"""How faithful the occlusion maps are, and what they cost, per patch and stride: the measurement
behind `explain.PATCH` and `explain.STRIDE`, written to results/bench_explain.json.

    python -m fer_core bench-explain [--data PATH] [--faces 60] [--out results/bench_explain.json]

For each setting and each of `faces` PublicTest faces (a fixed random sample), every shipped model's
map is computed; then the face's top 15 % pixels by the map are hidden (set to its mean gray), and,
three times, 15 % random pixels. Faithfulness is the mean of (drop of the model's top-class
probability with its own top pixels hidden) - (the mean drop with random pixels hidden): larger is
better, 0 is a map no better than chance. `wins` is the fraction of faces where the map beat random.
Cost is the median wall time of one face's maps, all models, on this machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import load_fer2013
from .explain import PATCH, STRIDE, explain_face, hide_top
from .preprocess import predict_proba
from .provenance import git_commit, utc_timestamp
from .serving import load_models

BENCH_SCHEMA = "fer_core.bench_explain/1"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "results" / "bench_explain.json"
SETTINGS = ((8, 4), (8, 8), (12, 8), (16, 8), (12, 12))  # (patch, stride)
HIDDEN = 0.15  # the fraction of pixels the deletion test hides
RANDOM_DRAWS = 3


def faithfulness(models: dict[str, Any], faces: np.ndarray, patch: int, stride: int, seed: int = 0) -> dict[str, Any]:
    """The deletion test of the maps at one setting, per model, and their cost per face."""
    rng = np.random.default_rng(seed)
    gaps: dict[str, list[float]] = {m: [] for m in models}
    seconds = []
    for face in faces:
        t0 = time.perf_counter()
        fm = explain_face(models, face, patch, stride)
        seconds.append(time.perf_counter() - t0)
        for name, model in models.items():
            target, t, bend = fm.targets[name], model.temperature, model.bend

            def p(img: np.ndarray) -> float:
                return float(predict_proba(model, img[None], temperature=t, bend=bend)[0, target])  # noqa: B023

            base = p(face)
            own = base - p(hide_top(face, fm.maps[name], HIDDEN))
            rand = np.mean([base - p(hide_top(face, rng.random(face.shape), HIDDEN)) for _ in range(RANDOM_DRAWS)])
            gaps[name].append(own - float(rand))
    return {
        "patch": patch,
        "stride": stride,
        "faithfulness": {m: float(np.mean(g)) for m, g in gaps.items()},
        "wins": {m: float(np.mean(np.asarray(g) > 0)) for m, g in gaps.items()},
        "ms_per_face": 1000 * float(np.median(seconds)),
    }


def run(data: str | None = None, n_faces: int = 60, weights_dir: str | None = None) -> dict[str, Any]:
    models = load_models(weights_dir=weights_dir)
    val = load_fer2013(data)["val"]
    idx = np.random.default_rng(0).choice(len(val), min(n_faces, len(val)), replace=False)
    faces = val.images[np.sort(idx)]
    return {
        "schema": BENCH_SCHEMA,
        "created_utc": utc_timestamp(),
        "git_commit": git_commit(),
        "models": list(models),
        "faces": len(faces),
        "split": "val",
        "hidden_fraction": HIDDEN,
        "chosen": {"patch": PATCH, "stride": STRIDE},
        "settings": [faithfulness(models, faces, patch, stride) for patch, stride in SETTINGS],
        "environment": {"cpus": os.cpu_count()},
    }
