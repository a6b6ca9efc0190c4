"""The Plotly figures of the pages: probabilities, confusion matrices, per-class bars, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer_core.registry import model_title

from .style import PALETTE
from .tables import series_points
from .text import escape_plotly_text

PER_CLASS_METRICS = ("f1", "precision", "recall", "specificity")


def comparison_figure(
    probabilities: Mapping[str, Sequence[float]], labels: Sequence[str], ensemble: Sequence[float] | None = None
) -> go.Figure:
    """One face, every model: grouped horizontal bars of each model's probabilities (one colour per
    model, in label order, top = first label), and the ensemble's as an outlined bar where given."""
    fig = go.Figure()
    ticks = [escape_plotly_text(label) for label in labels]  # category names are Plotly text
    series = [(model_title(m), list(p), PALETTE[j % len(PALETTE)]) for j, (m, p) in enumerate(probabilities.items())]
    if ensemble is not None:
        series.append(("Ensemble", list(ensemble), None))
    for name, probs, colour in series:
        if len(probs) != len(labels):
            raise ValueError(f"{len(probs)} probabilities for {len(labels)} labels")
        style = {"color": colour} if colour else {"color": "rgba(0,0,0,0)", "line": {"color": "#222", "width": 1.5}}
        fig.add_trace(
            go.Bar(
                x=[float(p) for p in probs],
                y=ticks,
                orientation="h",
                name=escape_plotly_text(name),
                marker=style,
                hovertemplate=f"{escape_plotly_text(name)}, %{{y}}: %{{x:.1%}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        height=60 + 10 * len(labels) * len(series),
        margin={"l": 0, "r": 10, "t": 10, "b": 0},
        xaxis={"range": [0, 1], "tickformat": ".0%", "fixedrange": True},
        yaxis={"categoryorder": "array", "categoryarray": ticks[::-1], "fixedrange": True},
        legend={"orientation": "h", "y": -0.15, "traceorder": "normal"},
    )
    return fig


def row_normalise(cm: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall view); a class with no images stays all zero."""
    a = np.asarray(cm, dtype=np.float64)
    totals = a.sum(axis=1, keepdims=True)
    return np.divide(a, totals, out=np.zeros_like(a), where=totals > 0)


def confusion_figure(
    cm: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str],
    normalise: bool = False,
    title: str | None = None,
    zmax: float | None = None,
    height: int = 520,
) -> go.Figure:
    """Heatmap of a confusion matrix: rows = true class (first label on top), columns = predicted.
    The colour scale runs 0-1 when row-normalised, else 0 to `zmax` (default: this matrix's largest
    count), so matrices drawn side by side can share one scale."""
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
            zmax=1 if normalise else zmax,
            hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>",
        )
    )
    fig.update_layout(
        title=None if title is None else escape_plotly_text(title),
        height=height,
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


def stage_lengths(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Epochs per training stage of one history (a stage: one `train` schedule; `--init` starts the
    next); [n] for a model trained in one go."""
    lengths: list[int] = []
    for i, row in enumerate(rows):
        if i == 0 or row.get("stage") != rows[i - 1].get("stage"):
            lengths.append(0)
        lengths[-1] += 1
    return lengths


def history_figure(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> go.Figure:
    """Validation loss, and train (solid) and validation (dashed) accuracy per epoch, one colour per
    model; a dotted line where a model's next training stage began. Train loss is left out: a stage
    may change what it measures (distillation mixes in a teacher's targets), validation loss not."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["validation loss", "accuracy"], horizontal_spacing=0.08)
    last = 1
    for j, (name, rows) in enumerate(histories.items()):
        colour = PALETTE[j % len(PALETTE)]
        title = escape_plotly_text(model_title(name))  # a history key comes from the run file
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
        last = max([last, *[e for e in epochs if isinstance(e, (int, float))]])
        for col, key, part, dash in (
            (1, "val_loss", "val", "dash"),
            (2, "train_acc", "train", "solid"),
            (2, "val_acc", "val", "dash"),
        ):
            if not any(key in r for r in rows):
                continue
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=[r.get(key) for r in rows],
                    mode="lines+markers" if len(rows) < 15 else "lines",
                    name=f"{title} {part}",
                    legendgroup=escape_plotly_text(name),
                    showlegend=key != "val_loss",  # one legend entry per model and part, not per panel
                    line={"color": colour, "dash": dash},
                ),
                row=1,
                col=col,
            )
        start = 0
        for length in stage_lengths(rows)[:-1]:  # where each later stage began: a line, no text to overlap
            start += length
            for col in (1, 2):
                fig.add_vline(x=start + 0.5, line={"color": colour, "dash": "dot", "width": 1}, row=1, col=col)
    fig.update_xaxes(title_text="epoch", range=[0.5, last + 0.5])
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(height=420, margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h", "y": -0.2})
    return fig


def reliability_figure(curves: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Reliability diagrams: per run, accuracy against mean confidence in each bin of the top
    probability, before calibration (every temperature 1) and after (what is served), with the
    diagonal a calibrated model lies on. `curves` maps a name to a run's `calibration` block."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["before: the networks' own softmax", "after: calibrated (what the app shows)"],
        horizontal_spacing=0.08,
        shared_yaxes=True,
    )
    for col in (1, 2):
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"color": "#999999", "dash": "dot", "width": 1},
                name="calibrated (accuracy = confidence)",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
    for j, (name, cal) in enumerate(curves.items()):
        colour = PALETTE[j % len(PALETTE)]
        title = escape_plotly_text(name)  # a run's title comes from its file
        for col, part in ((1, "raw"), (2, "calibrated")):
            m = cal[part]
            r = m["reliability"]
            pts = [
                (c, a, n)
                for c, a, n in zip(r["confidence"], r["accuracy"], r["count"], strict=True)
                if n and c is not None and a is not None
            ]
            fig.add_trace(
                go.Scatter(
                    x=[c for c, _, _ in pts],
                    y=[a for _, a, _ in pts],
                    customdata=[n for _, _, n in pts],
                    mode="lines+markers",
                    name=f"{title} (ECE {m['ece']:.3f})" if col == 2 else title,
                    legendgroup=title,
                    showlegend=col == 2,
                    line={"color": colour},
                    hovertemplate=f"{title}<br>confidence %{{x:.1%}}<br>accuracy %{{y:.1%}}<br>"
                    "%{customdata:,} images<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="confidence (top probability)", range=[0, 1], tickformat=".0%")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    fig.update_layout(height=420, margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"orientation": "h", "y": -0.25})
    return fig


def memory_figure(series: Mapping[str, Any]) -> go.Figure:
    """Resident memory over time, one line per named series of [seconds, MB] pairs (bad ones skipped)."""
    fig = go.Figure()
    for j, (name, points) in enumerate(series.items()):
        pts = series_points(points)
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


def timeline_figure(times: Sequence[float], probs: Sequence[Sequence[float]], labels: Sequence[str]) -> go.Figure:
    """One track over time: the ensemble's probability of each expression at each sampled frame."""
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape != (len(times), len(labels)):
        raise ValueError(f"{p.shape} probabilities for {len(times)} times and {len(labels)} labels")
    fig = go.Figure()
    for j, label in enumerate(labels):
        name = escape_plotly_text(label)
        fig.add_trace(
            go.Scatter(
                x=list(times),
                y=p[:, j].tolist(),
                mode="lines+markers" if len(times) < 30 else "lines",
                name=name,
                line={"color": PALETTE[j % len(PALETTE)]},
                hovertemplate=f"{name} at %{{x:.1f}} s: %{{y:.0%}}<extra></extra>",
            )
        )
    fig.update_layout(
        height=300,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        xaxis={"title": "seconds"},
        yaxis={"range": [0, 1], "tickformat": ".0%", "title": "ensemble"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def models_over_time_figure(
    times: Sequence[float],
    per_model: Mapping[str, Sequence[float]],
    label: str,
    ensemble: Sequence[float] | None = None,
) -> go.Figure:
    """One track, one expression (its most frequent): each model's probability of it over time, the
    ensemble's dashed: where the lines part, the models read the face differently."""
    fig = go.Figure()
    for j, (model, values) in enumerate(per_model.items()):
        name = escape_plotly_text(model_title(model))
        fig.add_trace(go.Scatter(x=list(times), y=list(values), mode="lines", name=name, line={"color": PALETTE[j]}))
    if ensemble is not None:
        fig.add_trace(go.Scatter(x=list(times), y=list(ensemble), mode="lines", name="Ensemble", line={"dash": "dash"}))
    fig.update_layout(
        height=260,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        xaxis={"title": "seconds"},
        yaxis={"range": [0, 1], "tickformat": ".0%", "title": f"p({escape_plotly_text(label)})"},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
