"""User text shown safely (markdown, Plotly) and the names runs are shown under."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fer_core.results import run_title


def run_label(run: Mapping[str, Any]) -> str:
    """What a run is shown as: model · split · TTA (never its file name), and "uploaded" for a
    visitor's own run file."""
    label = f"{run_title(run)} · {run['split']} · TTA {run['tta']}"
    return f"{label} · uploaded" if run.get("_uploaded") else label


def unique_labels(runs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Label -> run, in the runs' order; a second run of the same model, split and TTA (other
    weights, say) gets " (2)", a third " (3)"."""
    out: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        label = base = run_label(run)
        n = 2
        while label in out:
            label, n = f"{base} ({n})", n + 1
        out[label] = run
    return out


def comparison_labels(runs: Sequence[Mapping[str, Any]], split: str = "test", tta: str = "none") -> list[str]:
    """Labels (as `unique_labels` gives them) of the runs a reader compares first: each model's (and
    each ensemble's) run on `split` with `tta`, single models before ensembles. Falls back to every
    run's label if none matches."""
    labelled = unique_labels(runs)
    picked = [(k, r) for k, r in labelled.items() if r["split"] == split and r["tta"] == tta]
    picked.sort(key=lambda kr: (len(kr[1].get("models") or [kr[1]["name"]]) > 1, run_title(kr[1]), kr[0]))
    return [k for k, _ in picked] or list(labelled)


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
