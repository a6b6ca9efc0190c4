"""Atomic file writes, the one way fer_core writes a file others read.

A temp file in the target's folder, then `os.replace`: a reader (the app, a resumed run) never
sees half a file, and a killed writer leaves the old file, not a torn one. The result is mode
0644: `mkstemp` alone makes 0600 files, which an app run as another user could not read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o644


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on a clean exit it replaces `path`, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], fsync: bool = False) -> Path:
    """Call `write(binary_file)` on a temp file and move it into place."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomic(path, lambda fh: fh.write(data))


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """`obj` as JSON (json.dumps keywords, e.g. indent) plus a final newline."""
    return write_bytes_atomic(path, (json.dumps(obj, **dumps_kwargs) + "\n").encode())
