"""Streamlit-side state shared by the pages: where weights and results live, and the cached loaders.

This is the only module besides the pages that imports streamlit; fer_core never does. Paths
come from the environment (FER_WEIGHTS_DIR, FER_RESULTS_DIR) or default to the repository's
weights/ and results/ folders.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import streamlit as st

from fer_core.errors import WeightsError
from fer_core.predict import Predictor
from fer_core.results import MAX_RUN_UPLOADS, RunSchemaError, load_runs, parse_run
from fer_core.serving import DEFAULT_WEIGHTS_DIR
from ui.text import escape_markdown

REPO = Path(__file__).resolve().parent
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


def through_app() -> None:
    """Make sure a page runs inside app.py's navigation. While no run of this process has called
    st.navigation yet, Streamlit treats pages/ as its older multipage folder and runs a page file on
    its own when its address is opened directly (the first visitor after a start following a link to
    /benchmarks): no top bar, a sidebar listing every file. Each page calls this first; it turns
    that mode off (PagesManager.uses_pages_directory, streamlit 1.67) and reruns through app.py,
    which then shows the page that was asked for."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


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


def uploaded_runs(files: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs in a visitor's uploaded files, and a message for each file that is not one.

    Each file is parsed once per session, keyed by its content (a rerun after a widget click
    reuses the parse), and at most MAX_RUN_UPLOADS files are read; runs of files the visitor has
    removed are dropped with them."""
    before: dict[str, tuple[dict[str, Any] | None, str | None]] = st.session_state.get("_uploaded_runs", {})
    kept: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    runs, errors = [], []
    for f in files[:MAX_RUN_UPLOADS]:
        raw = f.getvalue()
        key = hashlib.sha256(raw).hexdigest()
        if key not in before:
            try:
                run = parse_run(raw, f.name)
                before[key] = ({**run, "_file": f"{f.name} (uploaded)", "_uploaded": True}, None)
            except RunSchemaError as exc:
                before[key] = (None, str(exc))
        kept[key] = before[key]
        run, error = kept[key]
        if run is not None:
            runs.append(run)
        else:
            errors.append(error)
    if len(files) > MAX_RUN_UPLOADS:
        errors.append(
            f"{len(files)} files uploaded; the dashboard reads the first {MAX_RUN_UPLOADS}. Remove some to add others."
        )
    st.session_state["_uploaded_runs"] = kept
    return runs, errors
