"""The Plotly figures of the pages: probabilities, confusion matrices, per-class bars, curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer_core.registry import model_title

from .style import OTHER_COLOUR, PALETTE, TOP_COLOUR
from .tables import series_points
from .text import escape_plotly_text

PER_CLASS_METRICS = ("f1", "precision", "recall", "specificity")


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
