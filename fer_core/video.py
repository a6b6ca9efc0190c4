"""Video: a clip in, every face's reading by each model over time out.

Clips are decoded in memory with PyAV (FFmpeg's decoders, bundled in its wheels: H.264, VP8/9,
HEVC, MPEG-4, in MP4, WebM, MOV, MKV or AVI; nothing is written to disk). Frames are sampled at
`fps` per second of the clip's own timestamps; each sampled frame goes through the photo path
(`Predictor.analyze`: detection, the models, the ensemble), and `Tracker` links the faces of
consecutive samples into tracks by the overlap of their boxes, so each person is one track.

Bounds, checked while decoding (a header may lie about the duration or the frame count): the
clip's bytes (`MAX_VIDEO_BYTES`), its frame size from the stream header before any frame is
decoded (`MAX_FRAME_PIXELS`), its length by the decoded frames' timestamps (`max_seconds`,
default `MAX_SECONDS`), the frames decoded in all (`MAX_DECODED_FRAMES`) and the samples
(`MAX_SAMPLES`). Whatever crosses one, or cannot be decoded, is an `InvalidVideoError` that
says what was wrong.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidVideoError
from .faces import Box

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
WEB_VIDEO_SUFFIXES = ("mp4", "mov", "webm")  # what the app's uploader offers
MAX_VIDEO_BYTES = 50 * 2**20  # 50 MiB: a minute of phone video at a modest bit rate
MAX_SECONDS = 60.0  # of clip time, by the frames' timestamps (the CLI can allow more)
MAX_FRAME_PIXELS = 3840 * 2160  # 4K: checked from the stream header before decoding a frame
MAX_DECODED_FRAMES = 20_000  # every frame is decoded to reach the sampled ones: 60 s at ~330 fps
DEFAULT_FPS = 2.0  # samples per second of clip: faster than real time on two cores (results/bench_video.json)
MAX_FPS = 10.0
MAX_SAMPLES = 1_000  # sampled frames per clip, whatever fps and length allow
ANALYSIS_SIDE = 1280  # sampled frames are scaled down to this longer side before detection
TRACK_IOU = 0.3  # a face joins the track whose last box it overlaps most, if by at least this
TRACK_GAP_S = 2.0  # a track not seen for longer than this ends; the face that comes back starts a new one


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Tracker:
    """Greedy IoU tracking: each face of a frame joins the live track whose last box it overlaps
    most (at least `min_iou`; each track takes one face a frame), else starts a new track. A track
    not seen for more than `max_gap_s` seconds ends. Track ids count from 1 in order of appearance."""

    min_iou: float = TRACK_IOU
    max_gap_s: float = TRACK_GAP_S
    _last: dict[int, tuple[Box, float]] = field(default_factory=dict)
    _next: int = 1

    def update(self, boxes: list[Box], time_s: float) -> list[int]:
        """The track id of each box of the frame at `time_s`, in the boxes' order."""
        self._last = {t: (b, s) for t, (b, s) in self._last.items() if time_s - s <= self.max_gap_s}
        pairs = sorted(
            ((iou(box, last), i, t) for i, box in enumerate(boxes) for t, (last, _) in self._last.items()),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, i, t in pairs:
            if overlap < self.min_iou:
                break
            if ids[i] is None and t not in taken:
                ids[i] = t
                taken.add(t)
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._next
                self._next += 1
            self._last[ids[i]] = (box, time_s)
        return [int(t) for t in ids]


@dataclass(frozen=True)
class Frame:
    """One sampled frame: when (seconds from the start, by the clip's timestamps), and its RGB
    pixels, scaled so that the longer side is at most ANALYSIS_SIDE."""

    index: int  # sample number, from 0
    time_s: float
    image: np.ndarray = field(repr=False)
    scale: float = 1.0  # the clip's pixels per pixel of `image` (boxes are given in the clip's)


def _open(source: bytes | str | os.PathLike, max_bytes: int):
    import av  # PyAV: only the video path needs it

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise InvalidVideoError(
                f"the clip is {len(data) / 2**20:.1f} MiB; at most {max_bytes / 2**20:.0f} MiB is read here. "
                "Trim or re-encode it."
            )
        stream: Any = io.BytesIO(data)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InvalidVideoError(f"cannot read the clip: {exc.strerror or exc}") from None
        if size > max_bytes:
            raise InvalidVideoError(
                f"the clip is {size / 2**20:.1f} MiB; at most {max_bytes / 2**20:.0f} MiB is read "
                "(raise it with --max-video-mb)."
            )
        stream = str(path)
    try:
        return av.open(stream, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InvalidVideoError(f"not a video this reader can decode ({_reason(exc)}).") from None


def _reason(exc: Exception) -> str:
    text = str(exc).split(":")[-1].strip() or type(exc).__name__
    return text[:120]


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says (it may lie: the decode checks the bounds itself)."""

    width: int
    height: int
    duration_s: float | None
    fps: float | None


def probe(source: bytes | str | os.PathLike, max_bytes: int = MAX_VIDEO_BYTES) -> ClipInfo:
    """The clip's frame size, duration and frame rate from its header, without decoding a frame
    (what the app's progress bar is scaled by); InvalidVideoError if it is not a video."""
    container = _open(source, max_bytes)
    try:
        if not container.streams.video:
            raise InvalidVideoError("the file holds no video stream (audio only?).")
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # microseconds
        rate = float(stream.average_rate) if stream.average_rate else None
        return ClipInfo(stream.codec_context.width or 0, stream.codec_context.height or 0, duration, rate)
    finally:
        container.close()


def sample_frames(
    source: bytes | str | os.PathLike,
    fps: float = DEFAULT_FPS,
    max_seconds: float = MAX_SECONDS,
    max_bytes: int = MAX_VIDEO_BYTES,
) -> Iterator[Frame]:
    """The clip's frames at `fps` per second of clip time (the first frame, then the first frame at
    or after each 1/fps step), decoded one at a time: memory stays flat over any length."""
    if not (0 < fps <= MAX_FPS):
        raise ValueError(f"fps must be above 0 and at most {MAX_FPS:g}; got {fps}")
    import av

    container = _open(source, max_bytes)
    try:
        if not container.streams.video:
            raise InvalidVideoError("the file holds no video stream (audio only?).")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > MAX_FRAME_PIXELS:
            raise InvalidVideoError(
                f"frames of {width}x{height} px; at most {MAX_FRAME_PIXELS / 1e6:.1f} megapixels (4K) are "
                "decoded here. Scale the clip down."
            )
        stream.thread_type = "AUTO"
        step, next_t, decoded, n, first = 1.0 / fps, 0.0, 0, 0, None
        try:
            for frame in container.decode(stream):
                decoded += 1
                if decoded > MAX_DECODED_FRAMES:
                    raise InvalidVideoError(f"more than {MAX_DECODED_FRAMES:,} frames; trim the clip.")
                if frame.width * frame.height > MAX_FRAME_PIXELS:
                    raise InvalidVideoError(f"a frame of {frame.width}x{frame.height} px is over 4K.")
                if frame.pts is None or frame.time_base is None:
                    t = (decoded - 1) / float(stream.average_rate or 30)
                else:
                    t = float(frame.pts * frame.time_base)
                first = t if first is None else first
                t -= first  # clips may start at a non-zero timestamp
                if t > max_seconds:
                    raise InvalidVideoError(
                        f"the clip is longer than {max_seconds:g} s; trim it (the command line can allow more)."
                    )
                if t + 1e-6 < next_t:
                    continue
                if n >= MAX_SAMPLES:
                    raise InvalidVideoError(f"more than {MAX_SAMPLES:,} sampled frames; lower the rate.")
                scale = max(frame.width, frame.height) / ANALYSIS_SIDE
                if scale > 1:
                    w, h = round(frame.width / scale), round(frame.height / scale)
                    pixels = frame.to_ndarray(width=w - w % 2, height=h - h % 2, format="rgb24")
                    scale = frame.width / pixels.shape[1]
                else:
                    pixels, scale = frame.to_ndarray(format="rgb24"), 1.0
                yield Frame(n, round(t, 3), pixels, scale)
                n += 1
                while next_t <= t + 1e-6:
                    next_t += step
        except av.error.FFmpegError as exc:
            if n == 0:
                raise InvalidVideoError(f"the clip could not be decoded ({_reason(exc)}).") from None
            raise InvalidVideoError(f"the clip is damaged after {n} sampled frames ({_reason(exc)}).") from None
        if n == 0:
            raise InvalidVideoError("the clip has no frames that can be decoded.")
    finally:
        container.close()


def scaled_box(box: Box, scale: float) -> Box:
    """A box found on a scaled-down frame, in the clip's own pixels."""
    if scale == 1.0:
        return box
    return Box(round(box.x * scale), round(box.y * scale), round(box.w * scale), round(box.h * scale))
