"""Small JSON files read defensively: model cards, benchmark records, the references table."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

MAX_SMALL_JSON_BYTES = 1024 * 1024  # model cards and the benchmark file are a few KB

MAX_SMALL_JSON_DEPTH = 32  # a card nests 4 levels; st.json of a deeper one risks Python's recursion limit

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def plain_json(value: Any, depth: int = 0) -> Any:
    """`value` with every lone surrogate in its strings (and keys) replaced by U+FFFD; ValueError if
    it nests deeper than MAX_SMALL_JSON_DEPTH (so the recursion here is bounded too)."""
    if depth > MAX_SMALL_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_SMALL_JSON_DEPTH} levels")
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [plain_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {plain_json(k, depth + 1): plain_json(v, depth + 1) for k, v in value.items()}
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
        return plain_json(json.loads(path.read_bytes()))
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
