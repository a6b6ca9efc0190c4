"""End to end in a real browser: `streamlit run app.py`, upload a photo, read the results, open Benchmarks.

Drives Debian's chromium (/usr/bin/chromium) through playwright; never `playwright install`.
Skipped when chromium is absent, except on CI (CI=true), where a missing browser is a failure.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import tools.loadrun as loadrun_tool
from fer_core.bench_video import moving_face_clip
from fer_core.registry import list_models, model_title
from tools.loadrun import main as loadrun
from tools.loadrun import serving

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(loadrun_tool.CHROMIUM)
CHROMIUM_ARGS = loadrun_tool.CHROMIUM_ARGS

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture
def playwright_api():
    """playwright's sync entry point, checked before a server is started for nothing."""
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright python package is not installed (pip install -r requirements-dev.txt)")
    return sync_playwright


@pytest.fixture
def server(weights_dir, results_dir, tmp_path):
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "FER_WEIGHTS_DIR": str(weights_dir), "FER_RESULTS_DIR": str(results_dir)}
    with serving(log, env, timeout=90) as url:
        yield url


LAPTOP, PHONE = (1400, 900), (390, 844)
HOST_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|work|root|usr|var|opt|mnt|srv)/")  # an absolute path of the host


def _upload_and_find_the_verdict(page, url: str, photo: bytes) -> dict:
    """Upload `photo` on Classify; the first face's verdict card's box once it is drawn (page coordinates,
    the page not scrolled)."""
    page.goto(url)
    page.wait_for_selector("input[type=file]", state="attached")
    page.set_input_files(
        "input[type=file]", files=[{"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    card = page.locator("[class*=st-key-verdict-]").first
    card.wait_for()
    page.get_by_role("button", name="Download results (JSON)").wait_for()  # the page has finished
    page.wait_for_timeout(500)
    return card.bounding_box()


def _visible_text_is_clean(page, *paths: Path) -> None:
    body = page.inner_text("body")
    assert "placeholder" not in body.lower() and "stand-in" not in body.lower()
    assert not [p for p in paths if str(p) in body], "a host path is shown to visitors"
    assert not HOST_PATH.search(body), HOST_PATH.search(body)


def test_the_answer_comes_first_on_a_laptop_and_a_phone(
    playwright_api, server, astronaut_jpeg, weights_dir, results_dir
):
    """After an upload the verdict is on the first screen of a laptop and within two of a phone; the
    Benchmarks page leads with the headline; no page shows a host path or stale text."""
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": LAPTOP[0], "height": LAPTOP[1]})
            page.set_default_timeout(90_000)
            box = _upload_and_find_the_verdict(page, server, astronaut_jpeg)
            assert box["y"] + box["height"] <= LAPTOP[1], box  # seen without scrolling
            for title in [model_title(m) for m in list_models()]:
                page.locator("strong", has_text=title).first.wait_for()
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1")
            _visible_text_is_clean(page, REPO, weights_dir, results_dir)
            # Streamlit scrolls an inner container, so full_page screenshots stop at the viewport: make it tall.
            page.set_viewport_size({"width": LAPTOP[0], "height": 2400})
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "classify.png"), full_page=True)

            page.get_by_role("link", name="Benchmarks").click()
            page.get_by_role("heading", name="Leaderboard").wait_for()
            headline = page.get_by_text("On FER2013 PrivateTest", exact=False).first
            headline.wait_for()
            assert "the ensemble of the 3 models reads" in headline.inner_text()
            assert headline.bounding_box()["y"] < page.get_by_role("heading", name="Leaderboard").bounding_box()["y"]
            page.get_by_role("heading", name="Confusion matrices").wait_for()
            page.get_by_text("Peak memory").wait_for()  # the last section: the script has finished
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 3")
            page.wait_for_timeout(1000)
            assert page.locator("[data-testid=stException]").count() == 0
            _visible_text_is_clean(page, REPO, weights_dir, results_dir)
            page.screenshot(path=str(ARTIFACTS / "benchmarks.png"), full_page=True)

            page.get_by_role("link", name="About").click()
            page.get_by_role("heading", name="Privacy").first.wait_for()
            _visible_text_is_clean(page, REPO, weights_dir, results_dir)

            page.get_by_role("link", name="Video").click()  # a clip through the real server
            page.wait_for_selector("input[type=file]", state="attached")
            clip = {"name": "walk.mp4", "mimeType": "video/mp4", "buffer": moving_face_clip(3.0, 10)}
            page.set_input_files("input[type=file]", files=[clip])
            page.get_by_role("heading", name="Person 1").wait_for()
            page.get_by_role("button", name="Download per frame (CSV)").wait_for()
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2")
            assert page.locator("[data-testid=stException]").count() == 0
            _visible_text_is_clean(page, REPO, weights_dir, results_dir)
            page.close()

            phone = browser.new_page(viewport={"width": PHONE[0], "height": PHONE[1]}, is_mobile=True)
            phone.set_default_timeout(90_000)
            box = _upload_and_find_the_verdict(phone, server, astronaut_jpeg)
            assert box["y"] + box["height"] <= 2 * PHONE[1], box  # within two screens of a phone
            phone.set_viewport_size({"width": PHONE[0], "height": 3000})
            phone.wait_for_timeout(500)
            phone.screenshot(path=str(ARTIFACTS / "classify-phone.png"), full_page=True)
        finally:
            browser.close()


def test_a_page_opened_by_its_address_keeps_the_apps_navigation(playwright_api, server):
    """The first visit after a start is a link to /benchmarks: the page shows inside app.py's
    navigation (the top bar), not as a lone file of pages/ with Streamlit's sidebar of file names."""
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": LAPTOP[0], "height": LAPTOP[1]})
            page.set_default_timeout(90_000)
            for path, heading in (("/benchmarks", "Benchmarks"), ("/video", "Expressions over time")):
                page.goto(server + path)
                page.get_by_role("heading", name=heading, exact=True).wait_for()
                page.get_by_role("link", name="Classify").wait_for()  # the top bar's links
                assert page.locator("[data-testid=stSidebarNav]").count() == 0
                assert "classify\nvideo" not in page.inner_text("body").lower()  # no list of file names
        finally:
            browser.close()


@pytest.mark.slow  # 20 s of load plus the server's start
def test_loadrun_three_browsers_no_errors_no_leaks(playwright_api, weights_dir, results_dir, tmp_path, monkeypatch):
    """tools/loadrun.py in small: its own server, three pages uploading for 20 s and at least two photos
    each (on a slow machine three clients may not fit two photos each into 20 s), every photo answered."""
    monkeypatch.setenv("FER_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("FER_RESULTS_DIR", str(results_dir))
    out = tmp_path / "loadrun.json"
    rc = loadrun(["--clients", "3", "--seconds", "20", "--min-photos", "2", "--out", str(out)])
    record = json.loads(out.read_text())
    assert rc == 0 and record["errors"] == 0 and record["leaks"] == 0, record["error_samples"]
    assert all(c["photos"] >= 2 for c in record["per_client"]), record["per_client"]
    assert record["latency_ms"]["n"] >= 3 and record["latency_ms"]["p50"] > 0
    assert record["rss_mb"]["max"] > 100  # the server with three models loaded was sampled
    assert record["cpu"]["server_s"] > 0 and 0 < record["cpu"]["server_share"] <= 1


def test_an_upload_through_the_real_server_leaves_no_trace(playwright_api, server):
    """The privacy check of test_privacy.py, through `streamlit run` and a browser instead of AppTest:
    after the photo is analysed, no file written since (repository, temp folder, the server's log)
    holds its marker, name, bytes or pixels (not even the browser's profile folder)."""
    import hashlib
    import tempfile
    import time
    import uuid

    from test_privacy import leaks, marked_photo

    marker = f"privacy-marker-{uuid.uuid4().hex}"
    name = f"{marker}-holiday.png"
    photo, pixels = marked_photo(marker)
    needles = {
        "marker": marker.encode(),
        "upload bytes": photo[len(photo) // 2 : len(photo) // 2 + 64],
        "raw pixels": pixels[-20:, :, :].tobytes()[:96],
    }
    started = time.time() - 1
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(server)
            page.wait_for_selector("input[type=file]", state="attached")
            page.set_input_files("input[type=file]", files=[{"name": name, "mimeType": "image/png", "buffer": photo}])
            page.get_by_text("Face 1", exact=True).wait_for()
            page.get_by_role("button", name="Download results (JSON)").wait_for()
            pixel_hash = hashlib.sha256(pixels.tobytes()).hexdigest()
            found = leaks([REPO, Path(tempfile.gettempdir())], started, needles, pixel_hash)
        finally:
            browser.close()
    assert found == [], found
