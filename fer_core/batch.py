"""Batch prediction over files and folders, streamed: one output row per face as it is found.

    python -m fer_core predict photos/ more.jpg --format csv -o faces.csv
    python -m fer_core predict photos/ more.jpg --format csv -o faces.csv --resume   # after a kill

Files are read in a fixed order (arguments as given, folders walked sorted), so two runs write
the same rows in the same order. JSON lines hold one object per image; CSV holds one row per
face (for a clip: per face per sampled frame, with `time_s` and `track`; fer_core.video), and one
row with empty face columns for an image or frame without faces, so every image read is in
the output. Memory stays flat however many images there are (nothing is accumulated per image;
the folder walk keeps one entry per folder, and needs no recursion however deep the folders go);
an unreadable image, or a folder entry that cannot be read (a folder we may not list, a broken
link, a link loop), is reported on stderr and in its own output row, and the run goes on. CSV
cells that a spreadsheet would run as a formula (a file named `=cmd|calc.jpg`) are written with a
leading `'` (fer_core.csvsafe); JSON lines hold the names as they are. Each image's rows are
flushed as they are written, so a killed run loses at most the row being written; `--resume`
reads the file names already in the output, drops a torn last row, skips those files and appends
the rest (run it with the same paths and format). Exit status 1 if any image failed (including
failures recorded before a resume), else 0.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import csvsafe
from .errors import InvalidImageError
from .imageio import IMAGE_SUFFIXES, MAX_BYTES
from .predict import FacePrediction, Predictor, VideoFrame, csv_header, csv_rows, video_csv_rows
from .preprocess import check_tta
from .video import DEFAULT_FPS, MAX_FPS, MAX_SECONDS, MAX_VIDEO_BYTES, VIDEO_SUFFIXES, is_video

# File names on Linux are bytes, not always UTF-8: surrogateescape writes such a name's bytes as
# they are and reads them back to the same str, so --resume still recognises the file.
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


@dataclass(frozen=True)
class Unreadable:
    """An entry found while walking a folder that cannot be read: it becomes an error row."""

    path: Path
    message: str

    def __str__(self) -> str:
        return str(self.path)


def _reason(exc: OSError, link: bool = False) -> str:
    if link and exc.errno == errno.ENOENT:
        return "broken symbolic link (its target does not exist)"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    return f"cannot read it: {exc.strerror or exc}"


def _walk(top: Path) -> Iterator[Path | Unreadable]:
    """Image files under `top`, depth first in sorted order (each folder's files, then its
    subfolders), as os.walk would give them, but with an explicit stack instead of recursion: a
    folder nested thousands of levels deep costs a list entry per level, not a stack frame.

    Symbolic links to folders are not followed (as with os.walk), so a link cannot lead the walk
    out of `top` or round in a loop; a folder reached twice (a bind mount of itself) is walked once.
    A folder that cannot be listed, a broken link, a link loop or a FIFO/device named like an image
    comes out as an Unreadable entry, never as an exception.
    """
    stack = [top]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                yield Unreadable(folder, f"{folder}: folder loop (this folder was already walked)")
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Unreadable(folder, f"{folder}: cannot read this folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            path, link = folder / entry.name, False
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(path)
                    continue
                if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    continue
                link = entry.is_symlink()
                mode = entry.stat().st_mode  # follows a link: a broken one or a loop raises here
            except OSError as exc:
                yield Unreadable(path, f"{path}: {_reason(exc, link)}")
                continue
            if stat.S_ISDIR(mode):
                continue  # a link to a folder named like an image: not followed, like any folder link
            if not stat.S_ISREG(mode):  # opening a FIFO named x.jpg would block the run for good
                yield Unreadable(path, f"{path}: not a regular file (a FIFO, socket or device), not read")
                continue
            yield path
        stack.extend(reversed(subfolders))  # popped in sorted order


def iter_image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path | Unreadable]:
    """Files as given, and image files under folders (sorted, walked lazily and without recursion).
    What cannot be read is yielded as an Unreadable entry with the reason, so the run reports it."""
    for p in map(Path, paths):
        try:
            is_dir = p.is_dir()
        except OSError as exc:  # e.g. a name too long, or a parent folder we may not enter
            yield Unreadable(p, f"{p}: {_reason(exc)}")
            continue
        if is_dir:
            yield from _walk(p)
        else:
            yield p


def read_done(output: str | os.PathLike, fmt: str, header: list[str]) -> tuple[set[str], int]:
    """The files an earlier run already wrote to `output`, and how many of them failed.

    A run killed mid-write may leave a torn last row: it is cut off the file, so that image is
    simply done again. Reads line by line, so a large output file costs one set of names.
    """
    done: set[str] = set()
    failed: set[str] = set()
    good = 0  # bytes of complete rows
    path = Path(output)
    with open(path, newline="", **ENCODING) as fh:
        if fmt == "csv":
            first_line = fh.readline()
            if not first_line:
                return done, 0
            if next(csv.reader([first_line])) != csvsafe.safe_row(header):
                raise ValueError(
                    f"{path} does not start with the CSV header of these models ({', '.join(header[:3])}, ...); "
                    "resume with the same --format and --models, or write to a new file"
                )
            good = consumed = len(first_line.encode(**ENCODING))
            last = first_line
            last_file, last_start = None, good

            def lines() -> Iterator[str]:
                nonlocal consumed, last
                for line in fh:
                    consumed += len(line.encode(**ENCODING))
                    last = line
                    yield line

            for row in csv.reader(lines()):
                if len(row) != len(header) or not last.endswith("\n"):
                    break  # torn: the run was killed while writing it
                name = csvsafe.unescape_cell(row[0])  # the file name as given, not as escaped for spreadsheets
                if name != last_file:
                    last_file, last_start = name, good
                good = consumed
                done.add(name)
                if row[-1]:
                    failed.add(name)
            if last_file is not None:  # its rows may be only some of its faces (a write cut short): redo it
                done.discard(last_file)
                failed.discard(last_file)
                good = last_start
        else:
            for n, line in enumerate(fh, start=1):
                if not line.endswith("\n"):
                    break  # torn: the run was killed while writing it
                try:
                    row = json.loads(line)
                    name = row["file"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(
                        f"{path} line {n} is not one of this tool's JSON lines; resume with the same --format, "
                        "or write to a new file"
                    ) from None
                good += len(line.encode(**ENCODING))
                done.add(name)
                if "error" in row:
                    failed.add(name)
    if good < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return done, len(failed)


@dataclass(frozen=True)
class BatchOptions:
    """How `predict_paths` reads each image and where it writes the rows: the predict CLI's options.
    Checked when made, so a bad combination fails before any model is loaded or any file is read."""

    detect: bool = True  # find the faces; False: each image is one face
    region: str = "centre"  # with detect=False: the image's centred square, or "whole" (padded to a square)
    small_faces: bool = False  # also find faces down to ~2 % of the longer side (slower)
    tta: str = "none"  # "flip": each face averaged with its mirror (JSON lines record it as "tta")
    fmt: str = "json"  # "json": one object per image and line; "csv": one row per face
    output: str | None = None  # the file to write; None: standard output
    resume: bool = False  # skip the files already in `output` (a killed run) and append the rest
    progress: bool = True  # a progress bar with a total on stderr (costs a first, counting walk)
    fps: float = DEFAULT_FPS  # clips: sampled frames per second of clip time
    max_seconds: float = MAX_SECONDS  # clips: longer ones are refused (an error row)
    max_video_bytes: int = MAX_VIDEO_BYTES  # clips: larger files are refused

    def __post_init__(self) -> None:
        if self.resume and not self.output:
            raise ValueError("--resume needs the output file of the earlier run (-o FILE)")
        if not (0 < self.fps <= MAX_FPS):
            raise ValueError(f"--fps must be above 0 and at most {MAX_FPS:g}; got {self.fps}")
        if self.max_seconds <= 0 or self.max_video_bytes <= 0:
            raise ValueError("--max-seconds and --max-video-mb must be positive")
        check_tta(self.tta)  # here, else every image would fail with the same error


def predict_paths(paths: Iterable[str | os.PathLike], predictor: Predictor, options: BatchOptions | None = None) -> int:
    """Write every image's faces to `options.output` (or stdout); 1 if any image failed (including
    failures an earlier run recorded, with `options.resume`), else 0."""
    options = options or BatchOptions()
    header = csv_header(predictor.model_names)
    done, errors, append = _resume_point(options, header)
    rows = _Rows(options, header, predictor.model_names, append)
    files, bar = _files(list(paths), options.progress)
    n_faces = 0
    try:
        for f in files:
            if str(f) in done:
                continue
            clip = not isinstance(f, Unreadable) and is_video(f)
            if clip:
                frames, message = _read_clip(predictor, f, options)
            else:
                faces, message = _read(predictor, f, options)
            if message is not None:
                errors += 1
                print(f"error: {f}: {message}", file=sys.stderr)
                rows.error(f, message)
                continue
            if clip:
                n_faces += sum(len(fr.faces) for fr in frames)
                rows.frames(f, frames, options.fps)
            else:
                n_faces += len(faces)
                rows.faces(f, faces)
            if bar is not None:
                bar.set_postfix(faces=n_faces, errors=errors, refresh=False)
    finally:
        if bar is not None:
            bar.close()
        rows.close()
    return 1 if errors else 0


def _resume_point(options: BatchOptions, header: list[str]) -> tuple[set[str], int, bool]:
    """With `options.resume`: the files an earlier run finished, how many of them failed, and whether
    to append to its output (cut back to its last complete image). Else nothing done, a new file."""
    output = options.output
    if not (options.resume and output and Path(output).is_file()):
        return set(), 0, False
    done, errors = read_done(output, options.fmt, header)
    print(f"resuming {output}: {len(done)} files already done ({errors} failed)", file=sys.stderr)
    return done, errors, Path(output).stat().st_size > 0


def _files(paths: list[str | os.PathLike], progress: bool) -> tuple[Iterable[Path | Unreadable], Any]:
    """The walk over `paths`, and with `progress` the tqdm bar it is wrapped in (else None)."""
    files = iter_image_files(paths)
    if not progress:
        return files, None
    from tqdm import tqdm

    # A first walk only counts (one int, nothing kept), so the bar shows a total and an ETA.
    total = sum(1 for _ in iter_image_files(paths))
    bar = tqdm(files, total=total, unit="image", file=sys.stderr, mininterval=1.0)
    return bar, bar


def _read(predictor: Predictor, f: Path | Unreadable, options: BatchOptions) -> tuple[list[FacePrediction], str | None]:
    """The faces in one file, or why there are none to be had: (faces, None) or ([], message)."""
    if isinstance(f, Unreadable):  # from the walk: a folder we may not list, a broken link, a FIFO, ...
        return [], f.message
    try:
        if f.is_file() and f.stat().st_size > MAX_BYTES:
            raise InvalidImageError(f"{f}: over the {MAX_BYTES / 1e6:.0f} MB limit")
        o = options
        faces = predictor.predict(f, detect=o.detect, small_faces=o.small_faces, region=o.region, tta=o.tta)
        return faces, None
    except Exception as exc:  # InvalidImageError, OSError, or a bug: one image never stops the run
        return [], _message(exc)


def _message(exc: Exception) -> str:
    """What an error row says: a known problem with the file as it is, a bug with its type."""
    known = isinstance(exc, (InvalidImageError, OSError))  # InvalidVideoError is an InvalidImageError
    return str(exc) if known else f"{type(exc).__name__}: {exc}"


def _read_clip(predictor: Predictor, f: Path, options: BatchOptions) -> tuple[list[VideoFrame], str | None]:
    """A clip's sampled frames (at most MAX_SAMPLES of them, a few KB each without their pixels), or
    why there are none: written only once the whole clip is read, so --resume sees whole clips."""
    o = options
    try:
        frames = list(
            predictor.analyze_video(
                f,
                fps=o.fps,
                small_faces=o.small_faces,
                tta=o.tta,
                max_seconds=o.max_seconds,
                max_bytes=o.max_video_bytes,
            )
        )
        return frames, None
    except Exception as exc:  # InvalidVideoError, OSError, or a bug: one clip never stops the run
        return [], _message(exc)


class _Rows:
    """The output (a file, or stdout) in either format: each image's rows written at once and flushed,
    so a killed run tears at most its last line."""

    def __init__(self, options: BatchOptions, header: list[str], models: list[str], append: bool) -> None:
        self.output, self.tta, self.header, self.models = options.output, options.tta, header, models
        self.csv = options.fmt == "csv"
        mode = "a" if append else "w"
        self.out: IO[str] = open(self.output, mode, newline="", **ENCODING) if self.output else sys.stdout
        if self.csv and not append:
            csvsafe.writer(self.out).writerow(header)

    def error(self, f: Path | Unreadable, message: str) -> None:
        if self.csv:
            csvsafe.writer(self.out).writerow([str(f)] + [""] * (len(self.header) - 2) + [message])
        else:
            self.out.write(json.dumps({"file": str(f), "error": message}) + "\n")
        self.out.flush()

    def faces(self, f: Path, faces: list[FacePrediction]) -> None:
        if self.csv:
            self._write_rows(csv_rows(str(f), faces, self.models))
        else:
            faces_out = [{"face": i, **face.to_dict()} for i, face in enumerate(faces, start=1)]
            self.out.write(json.dumps({"file": str(f), "tta": self.tta, "faces": faces_out}) + "\n")
        self.out.flush()

    def frames(self, f: Path, frames: list[VideoFrame], fps: float) -> None:
        if self.csv:
            self._write_rows(video_csv_rows(str(f), frames, self.models))  # a clip's rows in one write
        else:
            doc = {"file": str(f), "tta": self.tta, "fps": fps, "frames": [fr.to_dict() for fr in frames]}
            self.out.write(json.dumps(doc) + "\n")
        self.out.flush()

    def _write_rows(self, rows: list[list[Any]]) -> None:
        """One file's CSV rows in one write: a kill tears at most its last line."""
        chunk = io.StringIO(newline="")
        csvsafe.writer(chunk).writerows(rows)
        self.out.write(chunk.getvalue())

    def close(self) -> None:
        if self.output:
            self.out.close()
        else:
            self.out.flush()
