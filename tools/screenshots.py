"""Screenshots of the app's three pages, as a user sees them with the shipped weights and results.

    python tools/screenshots.py --out docs/screenshots

A developer script, not a CLI command: it refreshes the README's pictures and needs chromium and playwright.

Starts `streamlit run app.py` on 127.0.0.1 (tools/loadrun.py's server), drives Debian's chromium
through playwright, turns on the Classify page's sample photo (the public-domain astronaut that
ships in assets/), and saves classify.jpg, benchmarks.jpg and about.jpg. Nothing is uploaded from
outside the repo, so the pictures can be committed.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fer_core.atomic import write_bytes_atomic  # noqa: E402
from tools.loadrun import CHROMIUM, CHROMIUM_ARGS, serving  # noqa: E402


def _jpeg(png: bytes, quality: int) -> bytes:
    """The screenshot as JPEG, cut below the last row that has anything in the main column."""
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    main = np.asarray(img)[:, img.width // 4 :]
    rows = np.flatnonzero((main != main[:, :1]).any(axis=(1, 2)))
    if len(rows):
        img = img.crop((0, 0, img.width, min(img.height, int(rows[-1]) + 48)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _settle(page) -> None:
    """Wait for the page's Plotly charts, then until their count has not changed for 2 s."""
    page.wait_for_selector(".js-plotly-plot")
    count = -1
    while True:
        page.wait_for_timeout(2000)
        now = page.locator(".js-plotly-plot").count()
        if now == count:
            return
        count = now


def shoot(url: str, out: Path, width: int, quality: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved = []

    def save(page, name: str) -> None:
        path = out / name
        write_bytes_atomic(path, _jpeg(page.screenshot(full_page=True), quality))
        saved.append(path)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # Streamlit scrolls an inner container, so a full-page screenshot stops at the viewport.
            page = browser.new_page(viewport={"width": width, "height": 6000})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_text("Use the sample photo (NASA astronaut, public domain)", exact=True).click()
            page.get_by_text("Face 1", exact=True).wait_for()
            page.get_by_role("button", name="Download results (JSON)").wait_for()
            _settle(page)
            save(page, "classify.jpg")

            page.get_by_role("link", name="Benchmarks").click()
            page.get_by_text("Peak memory").wait_for()
            _settle(page)
            save(page, "benchmarks.jpg")

            page.get_by_role("link", name="About").click()
            page.get_by_role("heading", name="Privacy").first.wait_for()
            page.wait_for_timeout(1000)
            save(page, "about.jpg")
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots"), help="folder for the JPEGs")
    ap.add_argument("--width", type=int, default=1400, help="browser width in px (default 1400)")
    ap.add_argument("--quality", type=int, default=80, help="JPEG quality (default 80)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "streamlit.log"
        with serving(log) as url:
            for path in shoot(url, out, args.width, args.quality):
                print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
