"""Batch run: the predict CLI over a folder of 10,000 photos, killed half way and resumed.

    python tools/batchrun.py --images 10000 --out results/batchrun.json
    python tools/batchrun.py --images 300 --weights-dir /tmp/w --out /tmp/batchrun.json

A developer script, not a CLI command: it checks `python -m fer_core predict` from outside, killed and resumed.

Builds a corpus in a temporary folder (generated here, nothing downloaded, deleted afterwards
unless --keep): mostly photos made from the public-domain astronaut in assets/ at random sizes
(256-1024 px), positions, brightness and formats (JPEG, PNG, WebP), some group pictures of 2-6
faces, some pictures without a face, and about 1 % broken files (empty, text named .jpg,
truncated JPEG). Then runs `python -m fer_core predict CORPUS --format csv -o OUT` as a user
would, samples the process's resident memory every half second, SIGKILLs it once about half the
images are in the output, and runs the same command again with --resume.

Checks, all written to the JSON file (schema "fer_core.batchrun/1"):
- every file is in the output exactly once (face rows numbered 1..k, no duplicates, none missing);
- every broken file, and nothing else, is reported as an error, and the run went on past it;
- the exit status is 1 (some images failed) as documented;
- the progress bar was drawn (tqdm on stderr);
- memory levelled off: the peak of the last third of the samples within 10 % of the middle third's.
Exit status 0 if all checks pass, else 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fer_core.atomic import write_json_atomic  # noqa: E402
from fer_core.provenance import git_commit, utc_timestamp  # noqa: E402
from tools.loadrun import RssSampler, levelled  # noqa: E402

PHOTO = REPO / "assets" / "astronaut.jpg"
KINDS = (("photo", 0.86), ("group", 0.05), ("noface", 0.08), ("broken", 0.01))
BROKEN = ("empty", "text", "truncated")


def plan(n: int, seed: int) -> list[tuple[str, str]]:
    """(file name, kind) for n files: the kind mix of KINDS, shuffled by `seed`."""
    rng = random.Random(seed)
    counts = {kind: int(round(n * share)) for kind, share in KINDS}
    counts["photo"] += n - sum(counts.values())
    kinds = [k for k, c in counts.items() for _ in range(c)]
    rng.shuffle(kinds)
    # 100 files per folder, as a photo library would be spread out; the walk is recursive.
    return [(f"{i // 100:03d}/img-{i:05d}", kind) for i, kind in enumerate(kinds)]


def _encode(im: Any, rng: random.Random) -> tuple[bytes, str]:
    fmt = rng.choices(["JPEG", "PNG", "WEBP"], weights=[70, 15, 15])[0]
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": rng.randint(70, 95)} if fmt != "PNG" else {}))
    return buf.getvalue(), {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[fmt]


def make_file(kind: str, rng: random.Random, base: Any) -> tuple[bytes, str]:
    """One corpus file's bytes and suffix."""
    from PIL import Image, ImageDraw, ImageEnhance

    if kind == "photo":  # the astronaut somewhere on a canvas, at a random size and brightness
        side = rng.randint(256, 1024)
        face = base.resize((int(side * rng.uniform(0.5, 1.0)),) * 2, Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        face = ImageEnhance.Brightness(face).enhance(rng.uniform(0.6, 1.3))
        canvas = Image.new("RGB", (side, int(side * rng.uniform(0.75, 1.0))), tuple(rng.choices(range(256), k=3)))
        canvas.paste(face, (rng.randint(0, side - face.width), rng.randint(0, max(0, canvas.height - face.height))))
        return _encode(canvas, rng)
    if kind == "group":  # 2-6 astronauts in a row or grid
        cols, rows = rng.choice([(2, 1), (3, 1), (2, 2), (3, 2)])
        tile = rng.randint(200, 320)
        canvas = Image.new("RGB", (cols * tile, rows * tile), (255, 255, 255))
        small = base.resize((tile, tile), Image.Resampling.BILINEAR)
        for c in range(cols):
            for r in range(rows):
                canvas.paste(small, (c * tile, r * tile))
        return _encode(canvas, rng)
    if kind == "noface":  # shapes on a coloured ground
        w, h = rng.randint(200, 900), rng.randint(200, 900)
        canvas = Image.new("RGB", (w, h), tuple(rng.choices(range(256), k=3)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(rng.randint(3, 12)):
            x0, y0 = rng.randint(0, w - 1), rng.randint(0, h - 1)
            box = [x0, y0, x0 + rng.randint(1, w // 2), y0 + rng.randint(1, h // 2)]
            draw.rectangle(box, fill=tuple(rng.choices(range(256), k=3)))
        return _encode(canvas, rng)
    what = rng.choice(BROKEN)
    if what == "empty":
        return b"", ".jpg"
    if what == "text":
        return b"this is a shopping list, not a photo\n" * 20, ".jpg"
    good = io.BytesIO()  # a JPEG cut off a third of the way in
    base.save(good, format="JPEG", quality=90)
    return good.getvalue()[: len(good.getvalue()) // 3], ".jpg"


def build_corpus(root: Path, n: int, seed: int) -> dict[str, str]:
    """Write the corpus under `root`; {path as the CLI will print it: kind}."""
    from PIL import Image

    with Image.open(PHOTO) as im:
        base = im.convert("RGB")
    rng = random.Random(seed)
    files = {}
    for stem, kind in plan(n, seed):
        data, suffix = make_file(kind, rng, base)
        path = root / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[str(path)] = kind
    return files


def count_rows(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def run_leg(cmd: list[str], log: Path, output: Path, kill_at_rows: int | None) -> dict[str, Any]:
    """Run the CLI once, sampling its memory; SIGKILL it once the output has `kill_at_rows` rows."""
    t0 = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    sampler = RssSampler(proc.pid, every=0.5)
    sampler.start()
    killed = False
    while proc.poll() is None:
        if kill_at_rows is not None and count_rows(output) >= kill_at_rows:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.1 if kill_at_rows is not None else 0.5)
    rc = proc.wait()
    sampler.stopped.set()
    sampler.join()
    series = sampler.series
    return {
        "exit_status": rc,
        "killed": killed,
        "wall_s": round(time.monotonic() - t0, 1),
        "rss_mb": {
            "series": series,
            "max": max((mb for _, mb in series), default=None),
            **levelled(series),
        },
    }


def check_output(output: Path, files: dict[str, str]) -> dict[str, Any]:
    """Is every file in the output exactly once, with errors for exactly the broken files?"""
    faces: dict[str, list[str]] = {}
    errors: set[str] = set()
    with open(output, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        i_face, i_err = header.index("face"), header.index("error")
        for row in reader:
            faces.setdefault(row[0], []).append(row[i_face])
            if row[i_err]:
                errors.add(row[0])
    missing = sorted(set(files) - set(faces))
    extra = sorted(set(faces) - set(files))
    numbered = {f for f, idx in faces.items() if idx == [""] or idx == [str(i) for i in range(1, len(idx) + 1)]}
    bad_numbering = sorted(set(faces) - numbered)
    broken = {f for f, kind in files.items() if kind == "broken"}
    found = Counter()
    images_with_faces = Counter()
    for f, idx in faces.items():
        n = 0 if idx == [""] else len(idx)
        found[files.get(f, "?")] += n
        images_with_faces[files.get(f, "?")] += n > 0
    return {
        "files_in_output": len(faces),
        "missing": len(missing),
        "missing_samples": missing[:5],
        "unexpected": len(extra),
        "misnumbered_or_duplicated": len(bad_numbering),
        "misnumbered_samples": bad_numbering[:5],
        "errors_reported": len(errors),
        "errors_expected": len(broken),
        "errors_match_broken_files": errors == broken,
        "faces_by_kind": dict(found),
        "images_with_a_face_by_kind": dict(images_with_faces),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="corpus size (default 10000)")
    parser.add_argument("--out", required=True, help="JSON file to write (e.g. results/batchrun.json)")
    parser.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    parser.add_argument("--kill-at", type=float, default=0.5, help="kill the first run at this share (0 = never)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="build the corpus in DIR and keep it (reused next time)")
    parser.add_argument("--build-only", action="store_true", help="with --keep: build the corpus and stop")
    parser.add_argument("--note", help="stored in the record, e.g. what the weights are")
    args = parser.parse_args(argv)
    if args.build_only and not args.keep:
        parser.error("--build-only needs --keep DIR")

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="batchrun-"))
    work = Path(tempfile.mkdtemp(prefix="batchrun-out-"))
    try:
        t0 = time.monotonic()
        corpus, manifest = root / "corpus", root / f"corpus-{args.images}-{args.seed}.json"
        if manifest.is_file():  # built earlier with --keep (e.g. with --build-only, at low priority)
            files = json.loads(manifest.read_text())
        else:
            if corpus.exists():
                shutil.rmtree(corpus)
            files = build_corpus(corpus, args.images, args.seed)
            if args.keep:
                manifest.write_text(json.dumps(files))
        build_s = time.monotonic() - t0
        if args.build_only:
            print(f"corpus of {len(files)} files in {corpus} ({build_s:.0f} s)")
            return 0
        output = work / "faces.csv"
        cmd = [sys.executable, "-m", "fer_core", "predict", str(corpus), "--format", "csv", "-o", str(output)]
        if args.weights_dir:
            cmd += ["--weights-dir", args.weights_dir]
        kill_at = int(args.images * args.kill_at) if args.kill_at > 0 else None
        legs = [run_leg(cmd, work / "leg1.log", output, kill_at)]
        rows_at_kill = count_rows(output)
        if legs[0]["killed"]:
            legs.append(run_leg([*cmd, "--resume"], work / "leg2.log", output, None))
        logs = [(work / f"leg{i + 1}.log").read_text(errors="replace") for i in range(len(legs))]
        check = check_output(output, files)
        final = legs[-1]
        predict_s = sum(leg["wall_s"] for leg in legs)
        record = {
            "schema": "fer_core.batchrun/1",
            "created_utc": utc_timestamp(),
            "command": " ".join(["python", "-m", "fer_core", "predict", "CORPUS", "--format", "csv", "-o", "OUT"]),
            "weights_dir": args.weights_dir or "weights",
            "git_commit": git_commit(),
            "note": args.note,
            "images": args.images,
            "kinds": dict(Counter(files.values())),
            "corpus_build_s": round(build_s, 1),  # 0 when reused
            "rows_at_kill": rows_at_kill if legs[0]["killed"] else None,
            "legs": legs,
            "predict_wall_s": round(predict_s, 1),
            "images_per_second": round(args.images / predict_s, 1) if predict_s else None,
            "peak_rss_mb": max((leg["rss_mb"]["max"] or 0) for leg in legs),
            "resumed": ("resuming" in logs[-1]) if len(legs) > 1 else None,
            "progress_bar": all(f"/{args.images} [" in log and "image/s" in log for log in logs),
            "output": check,
            "environment": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
        ok = (
            check["missing"] == 0
            and check["unexpected"] == 0
            and check["misnumbered_or_duplicated"] == 0
            and check["errors_match_broken_files"]
            and final["exit_status"] == (1 if check["errors_expected"] else 0)
            and record["progress_bar"]
            and (record["resumed"] is not False)
            and final["rss_mb"].get("levelled") is not False
        )
        record["passed"] = ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    write_json_atomic(args.out, record, indent=2)
    c = record["output"]
    print(
        f"{args.images} images ({record['kinds']}) in {record['predict_wall_s']} s = {record['images_per_second']} "
        f"images/s over {len(record['legs'])} run(s); {c['files_in_output']} in the output, {c['missing']} missing, "
        f"{c['misnumbered_or_duplicated']} duplicated; {c['errors_reported']} errors for {c['errors_expected']} "
        f"broken files; peak RSS {record['peak_rss_mb']} MB, levelled: {final['rss_mb'].get('levelled')}; "
        f"passed: {ok} -> {args.out}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
