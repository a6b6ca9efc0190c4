"""Uploads stay in memory: after the Classify page analysed a photo carrying a unique marker, no file
written since (in the repository or the temp folder) holds the marker, the file name, the upload's
bytes or its pixels. And the Streamlit settings that protect uploads are in place."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from streamlit.testing.v1 import AppTest

from fer_core.imageio import to_gray

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
MAX_SCAN_BYTES = 20 * 1024 * 1024  # bigger files (model weights) are not where an upload would land


def marked_photo(marker: str) -> tuple[bytes, np.ndarray]:
    """The astronaut with a strip of marker-seeded colour noise (pixels no other file has) and the
    marker in a PNG tEXt chunk; returns the PNG and its pixels.

    Every noise colour has the same grey level, so the strip is flat in the grey image the face
    detector reads: with grey-level noise it found other than one face in 1 photo of 300 (a CI run
    failed on a second face)."""
    with Image.open(REPO / "assets" / "astronaut.jpg") as im:
        rgb = np.array(im.convert("RGB"))
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(marker.encode()).digest()[:8], "big"))
    candidates = rng.integers(0, 256, (1, 1 << 16, 3), dtype=np.uint8)
    palette = candidates[0][to_gray(Image.fromarray(candidates))[0] == 128]  # ~400 colours
    rgb[-40:] = palette[rng.integers(0, len(palette), (40, rgb.shape[1]))]
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue(), rgb


def files_written_since(roots: list[Path], since: float) -> Iterator[Path]:
    for root in roots:
        for folder, _, names in os.walk(root):  # unreadable folders are skipped (onerror=None)
            for name in names:
                path = Path(folder) / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink() and st.st_mtime >= since and st.st_size <= MAX_SCAN_BYTES:
                    yield path


def _pixel_hash(raw: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return hashlib.sha256(np.asarray(im.convert("RGB")).tobytes()).hexdigest()
    except Exception:
        return None


def test_an_upload_leaves_no_trace_on_disk(monkeypatch, weights_dir, results_dir):
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("FER_RESULTS_DIR", str(results_dir))
    marker = f"privacy-marker-{uuid.uuid4().hex}"
    name = f"{marker}-holiday.png"
    photo, pixels = marked_photo(marker)
    pixel_hash = hashlib.sha256(pixels.tobytes()).hexdigest()
    needles = {
        "marker": marker.encode(),
        "upload bytes": photo[len(photo) // 2 : len(photo) // 2 + 64],  # compressed image data
        "raw pixels": pixels[-20:, :, :].tobytes()[:96],  # a decoded copy of the noise strip
    }
    started = time.time() - 1  # mtime granularity

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.file_uploader[0].upload(name, photo, "image/png")
    at.run()
    assert not at.exception, at.exception
    assert not at.error and [s.value for s in at.subheader] == ["Face 1: how each model read it"]  # in full
    assert len(at.get("download_button")) == 2  # the exports were built too

    roots = [REPO, Path(tempfile.gettempdir())]
    # The scan must be able to fail: a planted copy of the marker is found, then removed.
    with tempfile.NamedTemporaryFile(prefix="privacy-canary-", delete=False) as canary:
        canary.write(b"..." + needles["marker"] + b"...")
    try:
        assert any(Path(canary.name) == path for path, _ in leaks(roots, started, needles, pixel_hash))
    finally:
        os.unlink(canary.name)
    assert leaks(roots, started, needles, pixel_hash) == []


def test_a_clip_upload_leaves_no_trace_on_disk(monkeypatch, weights_dir, results_dir):
    """The same for the Video page: the clip's name, bytes and decoded frames are nowhere on disk."""
    from clips import moving_face_clip

    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("FER_RESULTS_DIR", str(results_dir))
    marker = f"privacy-marker-{uuid.uuid4().hex}"
    clip = moving_face_clip(2.0, 10)
    needles = {"marker": marker.encode(), "clip bytes": clip[len(clip) // 2 : len(clip) // 2 + 64]}
    started = time.time() - 1
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/video.py").run()
    at.file_uploader[0].set_value((f"{marker}-party.mp4", clip, "video/mp4")).run()
    assert not at.exception and not at.error, at.exception
    assert "Person 1" in [s.value for s in at.subheader] and len(at.get("download_button")) == 2
    assert leaks([REPO, Path(tempfile.gettempdir())], started, needles, pixel_hash="") == []


def leaks(roots: list[Path], since: float, needles: dict[str, bytes], pixel_hash: str) -> list[tuple[Path, str]]:
    """Files written since `since` that hold a needle, or decode to the upload's pixels."""
    found = []
    for path in files_written_since(roots, since):
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        found += [(path, what) for what, needle in needles.items() if needle in raw]
        if needles["marker"].decode().encode("utf-16-le") in raw:
            found.append((path, "marker (UTF-16)"))
        if (raw[:8] == b"\x89PNG\r\n\x1a\n" or raw[:3] == b"\xff\xd8\xff") and _pixel_hash(raw) == pixel_hash:
            found.append((path, "pixels"))
    return found


def test_streamlit_settings_protect_uploads():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server, browser = config["server"], config["browser"]
    assert isinstance(server["maxUploadSize"], int) and 0 < server["maxUploadSize"] <= 50  # MB
    assert browser["gatherUsageStats"] is False
    assert server["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] == "none"  # an unexpected error never shows a traceback


def test_written_files_are_readable_by_others_and_never_torn(tmp_path):
    """Results, cards and weights are written atomically as 0644 (mkstemp alone gives 0600, which
    an app running as another user could not read); a failed write leaves the old file alone."""
    import stat

    import pytest

    from fer_core.atomic import write_atomic, write_json_atomic

    path = write_json_atomic(tmp_path / "sub" / "run.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_text() == '{"a": 1}\n'

    def fail(fh):
        fh.write(b"half a fi")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomic(path, fail)
    assert path.read_text() == '{"a": 1}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.json"]  # no temp file left behind
