"""How fast a clip is read: a generated 15 s 640x360 clip with one face, every shipped model,
the default rate, written to results/bench_video.json.

    python -m fer_core bench-video [--seconds 15] [--fps 2] [--out results/bench_video.json]

The clip is the sample photo (assets/astronaut.jpg, public domain) sliding across the frame,
encoded here as H.264 at 30 frames/s with PyAV: nothing is downloaded. Reported: the wall time
of `Predictor.analyze_video` over the whole clip (decoding every frame, reading the sampled ones),
frames read per second, the real-time factor (wall time / clip length: under 1 is faster than the
clip plays), and the process's peak resident memory before and after.
"""

from __future__ import annotations

import io
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .provenance import git_commit, utc_timestamp
from .samples import SAMPLE_PHOTO
from .video import DEFAULT_FPS

BENCH_SCHEMA = "fer_core.bench_video/1"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "bench_video.json"


def moving_face_frames(
    seconds: float, fps: int, size: tuple[int, int] = (640, 360), side: int = 420, travel: int = 240
) -> Iterator[np.ndarray]:
    """RGB frames: the sample photo at side x side px sliding `travel` px right across the clip (the
    frame shows a window of it; at these sizes the face cascade finds the face at every step)."""
    photo = Image.open(SAMPLE_PHOTO).convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    w, h = size
    n = max(1, round(seconds * fps))
    for i in range(n):
        frame = Image.new("RGB", size, (110, 115, 120))
        frame.paste(photo, (int(-60 + travel * i / max(1, n - 1)), (h - side) // 2))
        yield np.asarray(frame)


def encode(frames, fps: int, codec: str = "libx264", container: str = "mp4") -> bytes:
    """Frames (RGB arrays of one size) as a clip, in memory."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=fps)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return buf.getvalue()


def moving_face_clip(seconds: float = 15.0, fps: int = 30, **kw: Any) -> bytes:
    codec, container = kw.pop("codec", "libx264"), kw.pop("container", "mp4")
    return encode(moving_face_frames(seconds, fps, **kw), fps, codec, container)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(seconds: float = 15.0, fps: float = DEFAULT_FPS, weights_dir: str | None = None) -> dict[str, Any]:
    from .predict import Predictor

    clip = moving_face_clip(seconds)
    predictor = Predictor.load(weights_dir)
    list(predictor.analyze_video(moving_face_clip(1.0), fps=fps))  # warm up the sessions
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    frames = faces = 0
    seen = set()
    for frame in predictor.analyze_video(clip, fps=fps):
        frames += 1
        faces += len(frame.faces)
        seen.update(frame.tracks)
    wall = time.perf_counter() - t0
    tracks = len(seen)
    return {
        "schema": BENCH_SCHEMA,
        "created_utc": utc_timestamp(),
        "git_commit": git_commit(),
        "models": list(predictor.model_names),
        "clip": {"seconds": seconds, "width": 640, "height": 360, "fps": 30, "codec": "h264", "bytes": len(clip)},
        "rate_fps": fps,
        "frames_read": frames,
        "faces": faces,
        "tracks": tracks,
        "wall_s": round(wall, 3),
        "frames_per_s": round(frames / wall, 2),
        "real_time_factor": round(wall / seconds, 3),
        "peak_rss_mb": {"before": round(rss_before, 1), "after": round(_peak_rss_mb(), 1)},
        "environment": {"cpus": len(os.sched_getaffinity(0))},
    }
