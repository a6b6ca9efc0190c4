"""Streamlit-side state shared by the pages: where weights and results live, and the cached loaders.

This is the only module besides the pages that imports streamlit; fer_core never does. Paths
come from the environment (FER_WEIGHTS_DIR, FER_RESULTS_DIR) or default to the repository's
weights/ and results/ folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from fer_core.appdata import escape_markdown
from fer_core.errors import WeightsError
from fer_core.predict import Predictor
from fer_core.results import load_runs
from fer_core.serving import DEFAULT_WEIGHTS_DIR

REPO = Path(__file__).resolve().parent
ASSETS = REPO / "assets"
SAMPLE_PHOTO = ASSETS / "astronaut.jpg"
DEFAULT_RESULTS_DIR = REPO / "results"

HOW_TO_GET_WEIGHTS = """\
Train and export them (needs FER2013 and `requirements-dev.txt`; see the About page):

```
python -m fer_core train --model efficientnet_v2_s
python -m fer_core train --model resnet18
python -m fer_core train --model vgg16
python -m fer_core export --runs runs --weights weights
```

or point the app at a folder that holds `efficientnet_v2_s.onnx`, `resnet18.onnx` and `vgg16.onnx`
with `FER_WEIGHTS_DIR=/path/to/weights streamlit run app.py`."""


def weights_dir() -> str:
    return os.environ.get("FER_WEIGHTS_DIR") or str(DEFAULT_WEIGHTS_DIR)


def results_dir() -> str:
    return os.environ.get("FER_RESULTS_DIR") or str(DEFAULT_RESULTS_DIR)


def _signature(folder: str, pattern: str) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times: a cache key that changes when files land or change."""
    try:
        return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(Path(folder).glob(pattern)))
    except OSError:
        return ()


# max_entries=1: when new weights land, the old models are dropped instead of kept beside the new.
@st.cache_resource(show_spinner="Loading the models…", max_entries=1)
def _load_predictor(weights_dir: str, signature: tuple[tuple[str, int, int], ...]) -> Predictor:
    return Predictor.load(weights_dir)


def get_predictor() -> Predictor | None:
    """The shared Predictor (built once per process), or None after an error that says what to do."""
    folder = weights_dir()
    try:
        return _load_predictor(folder, _signature(folder, "*.onnx"))
    except (WeightsError, ValueError, KeyError, OSError) as exc:  # WeightsError, or a damaged file's metadata
        message = escape_markdown(str(exc))
        st.error(f"**The models could not be loaded.** {message}\n\n{HOW_TO_GET_WEIGHTS}", icon=":material/error:")
        return None


@st.cache_data(show_spinner=False, max_entries=4)
def _load_runs(results_dir: str, signature: tuple[tuple[str, int, int], ...]) -> list[dict[str, Any]]:
    return load_runs(results_dir)


def get_runs() -> list[dict[str, Any]]:
    """Every valid evaluation run in the results folder (re-read when its files change)."""
    folder = results_dir()
    return _load_runs(folder, _signature(folder, "*.json"))
