"""Screenshots of the app's three pages, as a user sees them with the shipped weights and results.

    python tools/screenshots.py --out docs/screenshots

A developer script, not a CLI command: it refreshes the README's pictures and needs chromium and playwright.

Starts `streamlit run app.py` on 127.0.0.1 (tools/loadrun.py's server), drives Debian's chromium
through playwright, clicks the Classify page's first example (the public-domain astronaut that
ships in assets/), and saves classify.jpg, benchmarks.jpg and about.jpg at a laptop's width
(1400 px) and the same names with -phone at a phone's (390 px). Nothing is uploaded from outside
the repo, so the pictures can be committed.
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
from ui.examples import EXAMPLES  # noqa: E402


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


VIEWPORTS = {"": 1400, "-phone": 390}  # file suffix -> width in px: a laptop, a phone


def shoot(url: str, out: Path, quality: int) -> list[Path]:
    """Each page at each viewport: NAME.jpg (laptop) and NAME-phone.jpg, the whole page from the top."""
    from playwright.sync_api import sync_playwright

    saved = []

    def save(page, name: str) -> None:
        path = out / name
        write_bytes_atomic(path, _jpeg(page.screenshot(full_page=True), quality))
        saved.append(path)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for suffix, width in VIEWPORTS.items():
                # Streamlit scrolls an inner container, so a full-page screenshot stops at the viewport:
                # the page is made tall enough to hold it all (the verdict's place is checked by the tests).
                page = browser.new_page(viewport={"width": width, "height": 6000 if suffix == "" else 4000})
                page.set_default_timeout(120_000)
                page.goto(url)
                page.locator("button", has_text=EXAMPLES["astronaut"]).first.dispatch_event("click")  # a pill
                page.locator("[class*=st-key-verdict-]").first.wait_for()
                page.get_by_role("button", name="Download results (JSON)").wait_for()
                _settle(page)
                save(page, f"classify{suffix}.jpg")

                page.goto(f"{url}/benchmarks")  # by address: on a phone the page links fold into a menu
                page.get_by_text("Peak memory").wait_for()
                _settle(page)
                save(page, f"benchmarks{suffix}.jpg")

                page.goto(f"{url}/about")
                page.get_by_role("heading", name="Privacy").first.wait_for()
                page.wait_for_timeout(1000)
                save(page, f"about{suffix}.jpg")
                page.close()
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots"), help="folder for the JPEGs")
    ap.add_argument("--quality", type=int, default=80, help="JPEG quality (default 80)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "streamlit.log"
        with serving(log) as url:
            for path in shoot(url, out, args.quality):
                print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
