"""Load run: many browsers use the Classify page at once; is it fast, private and steady in memory?

    python tools/loadrun.py --clients 20 --seconds 180 --out results/loadrun.json
    FER_WEIGHTS_DIR=/path/to/weights python tools/loadrun.py --clients 2 --seconds 15 --out /tmp/loadrun.json
    python tools/loadrun.py --url http://127.0.0.1:8501 --pid 12345 --clients 5 --seconds 30 --out /tmp/lr.json

A developer script, not a CLI command: it load-tests the Streamlit app and needs chromium and playwright.

Unless --url is given, starts `streamlit run app.py` on 127.0.0.1 at a free port (FER_WEIGHTS_DIR and
FER_RESULTS_DIR pass through to it) and stops it at the end. Then N headless Chromium pages (Debian's
/usr/bin/chromium through playwright, each in its own browser context, so its own Streamlit session)
upload photos in a loop until --seconds are up (and, with --min-photos N, until each has tried N
photos, however long that takes: a test on a slow machine then checks a fixed amount of work instead
of racing the clock). Each client's photo is the astronaut with its client
number drawn in the corner, and every upload is named `client-CC-photo-NNNN.jpg`, so a client that
sees any other client's file name on its page has been shown someone else's upload (a leak).

Measured per photo: latency from handing the file to the page until its results are shown (the
heading with the file name, the ensemble line and the download button). Each client's first photo
also pays for the models loading and the page warming up, so it is reported apart and left out of
the percentiles. Every second the server's resident memory (VmRSS of its process and children,
from /proc) is sampled; the run says memory levelled off if the highest sample of the last third
of the run is within 10 % of the highest of the middle third.

With --hostile H, H more clients upload the hostile corpus instead (tests/hostile_corpus.py: the
costliest images the app still reads, and ones it must refuse), in a loop, while the others upload
ordinary photos; the record then says how long the ordinary photos took, which is what one visitor
could do to the others (compare a run without --hostile).

Writes one JSON file (schema "fer_core.loadrun/1"): latency p50/p95/max, error and leak counts,
per-client counts, the RSS series and the verdict. Exit status 0 if there were no errors and no
leaks, else 1. On a small machine the browsers compete with the server for the CPU, so latencies
are an upper bound on what a user with their own machine would see.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as `python tools/loadrun.py`: fer_core is beside tools/

from fer_core.atomic import write_json_atomic  # noqa: E402
from fer_core.provenance import git_commit, utc_timestamp  # noqa: E402

PHOTO = REPO / "assets" / "astronaut.jpg"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHOTO_TIMEOUT_MS = 120_000  # one photo may wait behind 19 others on 2 cores; beyond this it is an error
LEVEL_TOLERANCE = 0.10  # last-third peak within 10 % of the middle-third peak: memory levelled off
NAME_RE = re.compile(r"client-(\d+)-photo-(\d+)")
SIZE_RE = re.compile(r"(\d+)×(\d+) px")


@dataclass
class Client:
    """What one browser saw."""

    cid: int
    latencies_ms: list[float] = field(default_factory=list)
    first_ms: float | None = None
    errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    hostile: bool = False  # uploads the hostile corpus; its latencies are not an ordinary photo's
    refused: int = 0  # hostile uploads answered with a message (refused, or no face) instead of results


def hostile_uploads() -> list[tuple[str, str, bytes]]:
    """(name, mime type, bytes) of each hostile upload: the worst the bounds let through, and what they refuse."""
    sys.path.insert(0, str(REPO / "tests"))
    from hostile_corpus import flat_webp, progressive_jpeg, strip_png

    from fer_core.imageio import MAX_JPEG_SCANS

    return [
        ("scans-at-the-bound.jpg", "image/jpeg", progressive_jpeg(7000, extra_scans=MAX_JPEG_SCANS - 6)),
        ("scans-5000.jpg", "image/jpeg", progressive_jpeg(7000, extra_scans=5000)),
        ("strip-1x50000.png", "image/png", strip_png(1, 50_000)),
        ("png-49mp.png", "image/png", strip_png(7000, 7000)),
        ("webp-25mp.webp", "image/webp", flat_webp(5000, 5000)),
        ("webp-49mp.webp", "image/webp", flat_webp(7000, 7000)),
    ]


def client_size(cid: int) -> tuple[int, int]:
    """Each client's photo has its own size, shown on the page: a result for another client's photo
    (not only its file name) on a client's page is seen as a leak."""
    return 440 + 4 * cid, 400 + 4 * cid


def client_photo(cid: int) -> bytes:
    """The astronaut at the client's own size, its number drawn large in the bottom-right corner, as JPEG."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(PHOTO) as im:
        photo = im.convert("RGB").resize(client_size(cid), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(photo)
    try:
        font: Any = ImageFont.load_default(size=56)
    except TypeError:  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    w, h = photo.size
    draw.rectangle([w - 130, h - 80, w - 5, h - 5], fill=(255, 255, 255))
    draw.text((w - 120, h - 75), f"{cid:02d}", fill=(0, 0, 0), font=font)
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f} s:\n{log.read_text() if log else ''}")


def start_server(log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on 127.0.0.1 at a free port, as a deployment would run it.

    Shared with tests/test_browser.py. `env` replaces the environment (default: inherit it)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def stop_server(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not gone within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(log: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[str]:
    """A healthy `streamlit run app.py` for the length of the block; yields its URL."""
    proc, url = start_server(log, env)
    try:
        wait_healthy(url, proc, log, timeout)
        yield url
    finally:
        stop_server(proc)


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return found + [g for c in found for g in _children(c)]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and all its descendants, in MB (None once it is gone)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            if p == pid:
                return None
    return total / 1024


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process, its reaped children and its live descendants, in s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return None
            continue
        # after the ")" closing the command name: state is field 0, then utime 11, stime 12, and the
        # reaped children's cutime 13, cstime 14 (a reaped child is no longer among the live ones)
        total += sum(int(v) for v in fields[11:15]) / tick
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores spent not idle since boot (/proc/stat), in s."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples rss_mb(pid) every `every` seconds until stopped."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.series: list[tuple[float, float]] = []
        self.stopped = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stopped.is_set():
            mb = rss_mb(self.pid)
            if mb is not None:
                self.series.append((round(time.monotonic() - self.t0, 1), round(mb, 1)))
            self.stopped.wait(self.every)


def levelled(series: list[tuple[float, float]], tolerance: float = LEVEL_TOLERANCE) -> dict[str, Any]:
    """Did memory stop growing? Compares the peaks of the middle and the last third of the samples."""
    values = [mb for _, mb in series]
    if len(values) < 3:
        return {"levelled": None, "reason": f"{len(values)} samples; need at least 3"}
    third = len(values) // 3
    middle, last = max(values[third : 2 * third]), max(values[2 * third :])
    return {
        "levelled": last <= middle * (1 + tolerance),
        "middle_third_max_mb": middle,
        "last_third_max_mb": last,
        "tolerance": tolerance,
    }


async def run_client(browser: Any, url: str, client: Client, deadline: float, min_photos: int = 0) -> None:
    """Upload this client's photo again and again until the deadline (and at least `min_photos` tries);
    record latency, errors, leaks."""
    context = await browser.new_context(viewport={"width": 1280, "height": 1800})
    page = await context.new_page()
    page.set_default_timeout(PHOTO_TIMEOUT_MS)
    photo = client_photo(client.cid)
    corpus = hostile_uploads() if client.hostile else []
    try:
        await page.goto(url)
        await page.wait_for_selector("input[type=file]", state="attached")
        n = 0
        while time.monotonic() < deadline or n < min_photos:
            name = f"client-{client.cid:02d}-photo-{n:04d}.jpg"
            try:
                if client.hostile:
                    kind, mime, raw = corpus[n % len(corpus)]
                    name = f"client-{client.cid:02d}-photo-{n:04d}-{kind}"
                    ms, refused = await upload_once(page, raw, name, mime, expect_refusal=True)
                    client.refused += refused
                else:
                    ms, _ = await upload_once(page, photo, name)
                    await check_leaks(page, client)
            except Exception as exc:  # a timeout or a page error: count it, start the page afresh
                client.errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                await page.goto(url)
                await page.wait_for_selector("input[type=file]", state="attached")
            else:
                if client.first_ms is None:
                    client.first_ms = ms
                else:
                    client.latencies_ms.append(ms)
            n += 1
    finally:
        await context.close()


async def upload_once(
    page: Any, photo: bytes, name: str, mime: str = "image/jpeg", expect_refusal: bool = False
) -> tuple[float, bool]:
    """Clear the previous upload, upload `photo` as `name`, wait for its results; milliseconds, and
    whether the page answered with a message instead (an error unless `expect_refusal`)."""
    delete = page.locator("[data-testid=stFileChipDeleteBtn]")
    while await delete.count():
        await delete.first.click()
        await page.get_by_text("Upload a photo, take one with the camera").wait_for()
    t0 = time.perf_counter()
    await page.set_input_files("input[type=file]", files=[{"name": name, "mimeType": mime, "buffer": photo}])
    await page.get_by_role("heading", name=name).wait_for()
    alert = page.locator("[data-testid=stAlertContainer]").filter(has_text=name)  # an error or "no face" for it
    done = page.locator("[class*=st-key-verdict-]").first  # a face's verdict card (pages/classify.py)
    await done.or_(alert.first).wait_for()
    if await alert.count():
        if expect_refusal:
            return (time.perf_counter() - t0) * 1000, True
        raise RuntimeError(f"the page showed: {(await alert.first.inner_text())[:200]}")
    await page.get_by_role("button", name="Download results (JSON)").wait_for()
    return (time.perf_counter() - t0) * 1000, False


async def check_leaks(page: Any, client: Client) -> None:
    """Any other client's file name, or a photo of another client's size, on this client's page is a leak."""
    text = await page.inner_text("body")
    for match in NAME_RE.finditer(text):
        if int(match.group(1)) != client.cid:
            client.leaks.append(match.group(0))
    w, h = client_size(client.cid)
    sizes = SIZE_RE.findall(text)
    if not sizes:
        raise RuntimeError("the page shows no photo size")
    client.leaks += [f"{sw}×{sh} px" for sw, sh in sizes if (int(sw), int(sh)) != (w, h)]


async def drive(url: str, clients: list[Client], seconds: float, min_photos: int = 0) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            deadline = time.monotonic() + seconds
            await asyncio.gather(*(run_client(browser, url, c, deadline, min_photos) for c in clients))
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def summarise(args: argparse.Namespace, url: str, clients: list[Client], series: list, wall_s: float) -> dict:
    hostile = [c for c in clients if c.hostile]
    clients = [c for c in clients if not c.hostile]  # the figures below are the ordinary photos'
    latencies = [ms for c in clients for ms in c.latencies_ms]
    firsts = [c.first_ms for c in clients if c.first_ms is not None]
    errors = [e for c in clients for e in c.errors]
    leaks = [leak for c in clients for leak in c.leaks]
    rss = [mb for _, mb in series]
    return {
        "schema": "fer_core.loadrun/1",
        "created_utc": utc_timestamp(),
        "config": {
            "clients": args.clients,
            "seconds": args.seconds,
            "min_photos": args.min_photos,
            "hostile_clients": args.hostile,
            "url": url,
            "server_started": not args.url,
        },
        "weights_dir": os.environ.get("FER_WEIGHTS_DIR", "weights"),
        "git_commit": git_commit(),
        "note": args.note,
        "wall_s": round(wall_s, 1),
        "photos": len(latencies) + len(firsts),
        "photos_per_second": round((len(latencies) + len(firsts)) / wall_s, 2) if wall_s else None,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": round(max(latencies), 1) if latencies else None,
            "n": len(latencies),
            "first_photo_median": round(statistics.median(firsts), 1) if firsts else None,
        },
        "errors": len(errors),
        "error_samples": errors[:10],
        "leaks": len(leaks),
        "leak_samples": leaks[:10],
        "hostile": {
            "uploads": sum(len(c.latencies_ms) + (c.first_ms is not None) for c in hostile),
            "refused": sum(c.refused for c in hostile),
            "errors": sum(len(c.errors) for c in hostile),
            "max_ms": round(max((ms for c in hostile for ms in c.latencies_ms), default=0.0), 1) or None,
        }
        if hostile
        else None,
        "per_client": [
            {"client": c.cid, "photos": len(c.latencies_ms) + (c.first_ms is not None), "errors": len(c.errors)}
            for c in clients
        ],
        "rss_mb": {
            "series": series,
            "start": rss[0] if rss else None,
            "max": max(rss) if rss else None,
            "end": rss[-1] if rss else None,
            **levelled(series),
        },
        "environment": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent browsers (default 20)")
    parser.add_argument("--seconds", type=float, default=60, help="how long they keep uploading (default 60)")
    parser.add_argument(
        "--min-photos",
        type=int,
        default=0,
        help="each client tries at least this many photos, past --seconds if need be",
    )
    parser.add_argument("--hostile", type=int, default=0, help="this many more clients upload the hostile corpus")
    parser.add_argument("--out", required=True, help="JSON file to write (e.g. results/loadrun.json)")
    parser.add_argument("--url", help="use this running app instead of starting one")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, to sample its memory")
    parser.add_argument("--note", help="stored in the record, e.g. what the weights are")
    args = parser.parse_args(argv)

    proc = None
    log = Path(tempfile.mkstemp(prefix="loadrun-streamlit-", suffix=".log")[1])
    try:
        if args.url:
            url, pid = args.url.rstrip("/"), args.pid
            wait_healthy(url, None, None)
        else:
            proc, url = start_server(log)
            pid = proc.pid
            wait_healthy(url, proc, log)
        sampler = RssSampler(pid) if pid else None
        if sampler:
            sampler.start()
        cpu0, busy0 = (cpu_seconds(pid) if pid else None), machine_busy_seconds()
        clients = [Client(cid) for cid in range(1, args.clients + 1)]
        clients += [Client(cid, hostile=True) for cid in range(args.clients + 1, args.clients + args.hostile + 1)]
        t0 = time.monotonic()
        asyncio.run(drive(url, clients, args.seconds, args.min_photos))
        wall = time.monotonic() - t0
        if sampler:
            sampler.stopped.set()
            sampler.join()
        cpu1, busy1 = (cpu_seconds(pid) if pid else None), machine_busy_seconds()
        record = summarise(args, url, clients, sampler.series if sampler else [], wall)
        photos = record["photos"]
        server = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        record["cpu"] = {  # where the machine's cores went: the server, or the browsers and the rest
            "server_s": None if server is None else round(server, 1),
            "machine_busy_s": round(busy1 - busy0, 1),
            "machine_capacity_s": round(wall * (os.cpu_count() or 1), 1),
            "server_share": None if server is None else round(server / max(busy1 - busy0, 1e-9), 3),
            "server_ms_per_photo": None if server is None or not photos else round(1000 * server / photos, 1),
        }
    finally:
        if proc is not None:
            stop_server(proc)
    write_json_atomic(args.out, record, indent=2)
    log.unlink(missing_ok=True)
    lat, rss = record["latency_ms"], record["rss_mb"]
    print(
        f"{record['photos']} photos from {args.clients} clients in {record['wall_s']} s: "
        f"p50 {lat['p50']} ms, p95 {lat['p95']} ms (first photo median {lat['first_photo_median']} ms); "
        f"{record['errors']} errors, {record['leaks']} leaks; RSS {rss['start']} -> {rss['max']} MB max, "
        f"levelled: {rss.get('levelled')}; server CPU {record['cpu']['server_ms_per_photo']} ms per photo, "
        f"{record['cpu']['server_share']} of the busy CPU -> {args.out}"
    )
    return 0 if record["errors"] == 0 and record["leaks"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
