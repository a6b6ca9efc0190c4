"""How fast the app answers: cold start, per-photo latency and memory, written to results/bench_app.json.

    python -m fer_core bench                               # weights/ and assets/astronaut.jpg
    python -m fer_core bench --weights-dir /tmp/w --out /tmp/bench.json --runs 30

Cold start is measured in a fresh interpreter (importing fer_core and loading every model until
the Predictor is ready), since this process has imported everything already. Latency is
`Predictor.analyze` on the sample photo resized to 640 px (`--side`): decode, face detection, all
models and the ensemble, timed over `--runs` calls after a short warm-up, once reading each face
alone and once with its mirror (`tta="flip"`, the app's mirror toggle), and once more with the
models read one after the other instead of at once (`Predictor(workers=1)`). Memory is this process's
resident set with the models loaded. The Benchmarks page shows the file.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .provenance import utc_timestamp
from .samples import SAMPLE_PHOTO as DEFAULT_PHOTO

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "bench_app.json"
BENCH_SCHEMA = "fer_core.bench/1"
PHOTO_SIDE = 640  # the "one 640-px photo with one face"
WARMUP = 3  # first calls pay for ONNX Runtime's lazy allocations; they are not what a user sees

# Run in a child interpreter: prints the import and load times in seconds as JSON.
_COLD_START = """
import json, sys, time
t0 = time.perf_counter()
from fer_core.predict import Predictor
t1 = time.perf_counter()
p = Predictor.load(sys.argv[1] or None)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "models": p.model_names}))
"""


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cold_start(weights_dir: str | None) -> dict[str, Any]:
    """Import + load times in a fresh interpreter, and the wall time of the whole child process."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _COLD_START, weights_dir or ""],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child failed:\n{done.stderr.strip()}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["ready_s"] = out["import_s"] + out["load_s"]
    out["process_wall_s"] = wall  # includes interpreter start-up and exit
    return out


def latency(predictor: Any, photo: bytes, runs: int, tta: str = "none") -> dict[str, Any]:
    """Median, p95 and mean of analyze() in ms, and the median of each stage."""
    for _ in range(WARMUP):
        predictor.analyze(photo, tta=tta)
    totals, stages = [], {}
    faces = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        analysis = predictor.analyze(photo, tta=tta)
        totals.append((time.perf_counter() - t0) * 1000)
        faces = len(analysis.faces)
        for k, v in analysis.timings_ms.items():
            stages.setdefault(k, []).append(v)
    a = np.asarray(totals)
    return {
        "tta": tta,
        "runs": runs,
        "faces": faces,
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "stages_median_ms": {k: float(np.median(v)) for k, v in stages.items() if k != "total"},
    }


def bench(
    weights_dir: str | None = None,
    photo: str | os.PathLike = DEFAULT_PHOTO,
    runs: int = 30,
    threads: int | None = None,
    side: int | None = PHOTO_SIDE,
) -> dict[str, Any]:
    """Measure everything and return the record written to bench_app.json. With `side`, the photo
    is first resized to that longer side and re-encoded as JPEG (quality 92), as a phone would send it."""
    import io

    from PIL import Image

    from .predict import Predictor
    from .serving import DEFAULT_WEIGHTS_DIR, default_threads

    raw = Path(photo).read_bytes()
    with Image.open(Path(photo)) as im:
        size = im.size
        if side:
            scale = side / max(size)
            size = (round(size[0] * scale), round(size[1] * scale))
            buf = io.BytesIO()
            im.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=92)
            raw = buf.getvalue()
    cold = cold_start(weights_dir)
    rss_before = rss_mb()
    predictor = Predictor.load(weights_dir, threads=threads)
    lat = latency(predictor, raw, runs)
    lat_flip = latency(predictor, raw, runs, tta="flip")  # the app's "read each face with its mirror too"
    # the same models read one after the other, as before they ran at once: what the pool buys
    one_by_one = Predictor(predictor.models, predictor.detector, workers=1)
    lat_seq = latency(one_by_one, raw, runs)
    return {
        "schema": BENCH_SCHEMA,
        "created_utc": utc_timestamp(),
        "weights_dir": str(weights_dir or DEFAULT_WEIGHTS_DIR),
        "models": predictor.model_names,
        "photo": {"file": Path(photo).name, "width": size[0], "height": size[1], "bytes": len(raw)},
        "cold_start": cold,
        "latency": lat,
        "latency_flip": lat_flip,
        "latency_one_model_at_a_time": lat_seq,
        "memory": {"rss_mb": rss_mb(), "rss_before_load_mb": rss_before},
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": threads or default_threads(),
            "model_workers": predictor.workers,
        },
    }


def summary(record: dict[str, Any]) -> str:
    """A bench_app.json record in one line: what the CLI prints."""
    lat, cold = record["latency"], record["cold_start"]
    return (
        f"{', '.join(record['models'])}: ready in {cold['ready_s']:.2f} s "
        f"(import {cold['import_s']:.2f} s + load {cold['load_s']:.2f} s); "
        f"analyze {lat['median_ms']:.1f} ms median, {lat['p95_ms']:.1f} ms p95 over {lat['runs']} runs "
        f"({lat['faces']} face(s)); with the mirror (TTA flip) {record['latency_flip']['median_ms']:.1f} ms median; "
        f"one model at a time {record['latency_one_model_at_a_time']['median_ms']:.1f} ms median; "
        f"RSS {record['memory']['rss_mb']:.0f} MB"
    )
