"""Our three models against the `fer` package's one, side by side on the same photos, in one run.

    python -m fer_core bench-fer --fer-python /path/to/fer-venv/bin/python   # -> results/bench_fer.json

`fer` needs TensorFlow, which this project does not install: put it in its own virtual
environment (`python -m venv fer-venv && fer-venv/bin/pip install fer==25.10.3 "setuptools<81"
tf-keras==2.21.0`) and name its interpreter with `--fer-python` or $FER_PYTHON. Without one the
command says so and writes nothing (exit status 2).

Each engine runs in a worker process of its own that loads its models once and then answers one
photo at a time; the two workers are asked alternately (who goes first swaps every round), so a
slow minute of the machine hits both. A worker times, inside itself, the photo from its bytes
to its faces' expressions: decode, face detection and every model (ours: all three and the
ensemble, as the app reads a photo by default; fer: its detector and mini-Xception). Cold start
is the time from starting the worker's interpreter to its first "ready" (import + loading the
models), memory the worker's resident set after the photos. The figures that matter are ratios
measured in the same run: ours / fer's per photo, and overall.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .provenance import utc_timestamp
from .samples import SAMPLE_PHOTO

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "bench_fer.json"
SCHEMA = "fer_core.bench_fer/1"
WARMUP = 3  # calls per photo and engine before timing: lazy allocations are not what a user sees
ENGINES = ("ours", "fer")

# One worker for either engine: no fer_core import on the fer side (it runs in fer's own venv).
# Protocol: prints {"ready": ...} once, then one JSON line per photo path read from stdin.
WORKER = r"""
import json, sys, time
engine, arg = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if engine == "ours":
    from fer_core.predict import Predictor
    p = Predictor.load(arg or None)
    def read(data):
        a = p.analyze(data)
        return len(a.faces)
else:
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2, numpy as np
    from fer.fer import FER
    p = FER()
    def read(data):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return len(p.detect_emotions(img))
def rss():
    with open("/proc/self/status") as fh:
        got = {k: int(v.split()[0]) / 1024 for k, v in (l.split(":", 1) for l in fh) if k in ("VmRSS", "VmHWM")}
    return got.get("VmRSS", 0.0), got.get("VmHWM", 0.0)
print(json.dumps({"ready": time.perf_counter() - t0}), flush=True)
for line in sys.stdin:
    with open(line.strip(), "rb") as fh:
        data = fh.read()
    t = time.perf_counter()
    faces = read(data)
    ms = (time.perf_counter() - t) * 1000
    now, peak = rss()
    print(json.dumps({"ms": ms, "faces": faces, "rss_mb": now, "peak_rss_mb": peak}), flush=True)
"""


def photos(folder: Path) -> list[dict[str, Any]]:
    """The photo set, written to `folder` as JPEG (quality 92): five one-face photos made from the
    public-domain sample, from a small web picture (425x521, where fer is fastest: its cost grows
    with the photo's area) to phone-upload sizes, and one group of six faces."""
    from PIL import Image, ImageEnhance, ImageOps

    base = Image.open(SAMPLE_PHOTO).convert("RGB")
    made: list[tuple[str, Image.Image, int]] = [
        ("one face, 425x521 px", base.crop((43, 0, 461, 512)).resize((425, 521), Image.Resampling.BICUBIC), 1)
    ]
    for side in (512, 640, 1024):
        made.append((f"one face, {side} px", base.resize((side, side), Image.Resampling.BICUBIC), 1))
    dim = ImageEnhance.Brightness(ImageOps.mirror(base.resize((800, 800), Image.Resampling.BICUBIC))).enhance(0.7)
    made.append(("one face, 800 px, mirrored and dimmer", dim, 1))
    # the sample's face (about x 178-270, y 67-159 of its 512 px) in a 200-px square, six times
    face = base.resize((512, 512), Image.Resampling.BICUBIC).crop((124, 13, 324, 213))
    tile = face.resize((240, 240), Image.Resampling.BICUBIC)
    group = Image.new("RGB", (720, 480))
    for i in range(6):
        group.paste(tile, ((i % 3) * 240, (i // 3) * 240))
    made.append(("group of six, 720x480 px", group, 6))
    out = []
    for i, (label, im, faces) in enumerate(made):
        path = folder / f"photo{i}.jpg"
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=92)
        path.write_bytes(buf.getvalue())
        out.append({"label": label, "file": str(path), "width": im.width, "height": im.height, "faces": faces})
    return out


class Worker:
    """One engine in its own process, asked one photo at a time."""

    def __init__(self, engine: str, python: str, arg: str = "") -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        if engine == "ours":
            env["PYTHONPATH"] = str(REPO)  # fer's interpreter gets nothing of this checkout
        self.engine = engine
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [python, "-c", WORKER, engine, arg],
            cwd=tempfile.gettempdir(),  # the fer worker must not import this checkout's packages by accident
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ready = self._reply()
        self.cold = {"ready_s": float(ready["ready"]), "process_to_ready_s": time.perf_counter() - t0}

    def _reply(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            code = self.proc.wait(timeout=30)
            raise RuntimeError(f"the {self.engine} worker stopped (exit status {code}) before answering")
        return json.loads(line)

    def ask(self, path: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "mean_ms": float(a.mean())}


def run(fer_python: str, weights_dir: str | None = None, rounds: int = 20) -> dict[str, Any]:
    """Both engines on the same photos, alternately; returns the record for bench_fer.json."""
    with tempfile.TemporaryDirectory(prefix="fer_core_bench_fer_") as tmp:
        shots = photos(Path(tmp))
        ours = str(Path(weights_dir).resolve()) if weights_dir else ""  # the worker runs in another folder
        workers = {"ours": Worker("ours", sys.executable, ours), "fer": Worker("fer", fer_python)}
        try:
            times: dict[str, list[list[float]]] = {e: [[] for _ in shots] for e in ENGINES}
            faces: dict[str, list[int]] = {e: [0] * len(shots) for e in ENGINES}
            last: dict[str, dict[str, Any]] = {}
            for shot in shots:
                for engine in ENGINES:
                    for _ in range(WARMUP):
                        workers[engine].ask(shot["file"])
            for r in range(rounds):
                order = ENGINES if r % 2 == 0 else ENGINES[::-1]
                for i, shot in enumerate(shots):
                    for engine in order:
                        got = workers[engine].ask(shot["file"])
                        times[engine][i].append(got["ms"])
                        faces[engine][i] = int(got["faces"])
                        last[engine] = got
        finally:
            for w in workers.values():
                w.close()
    rows = []
    for i, shot in enumerate(shots):
        ours, theirs = _stats(times["ours"][i]), _stats(times["fer"][i])
        rows.append(
            {
                **{k: v for k, v in shot.items() if k != "file"},
                "faces_found": {e: faces[e][i] for e in ENGINES},
                "ours": ours,
                "fer": theirs,
                "ratio": ours["median_ms"] / theirs["median_ms"],
            }
        )
    one_face = [row["ratio"] for row in rows if row["faces"] == 1]
    memory = {e: {"rss_mb": last[e]["rss_mb"], "peak_rss_mb": last[e]["peak_rss_mb"]} for e in ENGINES}
    cold = {e: workers[e].cold for e in ENGINES}
    return {
        "schema": SCHEMA,
        "created_utc": utc_timestamp(),
        "rounds": rounds,
        "warmup": WARMUP,
        "photos": rows,
        "ratios": {
            "one_face_photo": float(np.exp(np.mean(np.log(one_face)))),  # geometric mean over the one-face photos
            "one_face_photo_max": max(one_face),
            "group_photo": [row["ratio"] for row in rows if row["faces"] > 1],
            "cold_start": cold["ours"]["process_to_ready_s"] / cold["fer"]["process_to_ready_s"],
            "rss": memory["ours"]["rss_mb"] / memory["fer"]["rss_mb"],
        },
        "cold_start": cold,
        "memory": memory,
        "engines": {"ours": _our_engine(weights_dir), "fer": _fer_engine(fer_python)},
        "environment": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }


def _our_engine(weights_dir: str | None) -> dict[str, Any]:
    from .registry import list_models
    from .serving import DEFAULT_WEIGHTS_DIR, OnnxModel, weights_path

    folder = Path(weights_dir or DEFAULT_WEIGHTS_DIR)
    files = {name: weights_path(name, folder) for name in list_models() if weights_path(name, folder).is_file()}
    return {
        "models": list(files),
        "weights_dir": str(folder),
        "precision": {name: OnnxModel(p, verify=False).precision for name, p in files.items()},
        "read": "one view per face, three models and their ensemble (the app's default)",
        "weights_mb": {name: round(p.stat().st_size / 1e6, 1) for name, p in files.items()},
    }


def _fer_engine(fer_python: str) -> dict[str, Any]:
    done = subprocess.run(
        [fer_python, "-c", "import importlib.metadata as m; print(m.version('fer'))"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    version = done.stdout.strip() or None
    return {"python": fer_python, "version": version, "read": "FER() defaults (Haar + mini-Xception)"}


def find_fer_python(given: str | None) -> str | None:
    """The interpreter that can import `fer`: --fer-python, else $FER_PYTHON; None where neither works."""
    candidate = given or os.environ.get("FER_PYTHON")
    if not candidate:
        return None
    path = shutil.which(candidate) or candidate
    if not Path(path).is_file():
        return None
    ok = subprocess.run([path, "-c", "import fer.fer"], capture_output=True, check=False, timeout=120, cwd="/")
    return path if ok.returncode == 0 else None


def summary(record: dict[str, Any]) -> str:
    r = record["ratios"]
    return (
        f"ours / fer per one-face photo {r['one_face_photo']:.2f}x (worst {r['one_face_photo_max']:.2f}x), "
        f"group of six {', '.join(f'{x:.2f}x' for x in r['group_photo'])}; cold start {r['cold_start']:.2f}x, "
        f"memory {r['rss']:.2f}x"
    )
