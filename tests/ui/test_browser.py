"""The whole workflow in a real browser: Debian's Chromium driven by Playwright against the
API and the UI started here. Sign in -> upload -> train -> predict from input -> predict from
file. A screenshot per page goes to test-output/; each page's render time is printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOT, free_port, small_squad, wait_http

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "browser"
RENDER_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; without it the tests are skipped (fail where CI requires it)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("TAXONOMIST_REQUIRE_BROWSER"):
            pytest.fail("TAXONOMIST_REQUIRE_BROWSER is set but Chromium is not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    return CHROMIUM


# `chromium` comes first so that a missing browser skips before the API starts.
@pytest.fixture(scope="module")
def ui(chromium: str, live_server: str, api_settings: Any) -> Iterator[str]:
    """The Streamlit UI, on a free port, over the live API; its URL. It logs to ui.log in
    the API's home."""
    from taxonomist.ui import streamlit_command

    port = free_port()
    command, env = streamlit_command(live_server, "127.0.0.1", port)
    env["TAXONOMIST_HOME"] = str(api_settings.home)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_stcore/health")
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield url
    process.terminate()
    process.wait(timeout=30)
    print("page render seconds:", RENDER_SECONDS)


def _open(page, name: str, title: str) -> None:
    """Click a page in the sidebar, wait for its title, record the time, take a screenshot."""
    start = time.perf_counter()
    page.get_by_role("link", name=name).click()
    page.get_by_role("heading", name=title).wait_for(timeout=20_000)
    # The page has rendered when Streamlit's "running" indicator is gone.
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=20_000)
    RENDER_SECONDS[name] = round(time.perf_counter() - start, 2)
    page.screenshot(path=str(SHOTS / f"{name.lower().replace(' ', '_')}.png"), full_page=True)


def _click(page, name: str, exact: bool = False) -> None:
    """Click a button once Streamlit has finished running the page: a click on a button that
    the running script is about to redraw can be lost (CI once showed the map's button, no
    job and no progress bar a minute after its click)."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
    page.get_by_role("button", name=name, exact=exact).click()


def _choose_file(page, path: Path) -> None:
    """Put a file in the first uploader and wait until its upload has finished: a form submitted
    while the chip still reads "Cancel upload of ..." goes without the file."""
    from playwright.sync_api import expect

    page.locator("input[type=file]").first.set_input_files(str(path))
    expect(page.get_by_role("button", name=f"Remove {path.name}")).to_be_visible(timeout=20_000)


def _signed_in(p: Any, ui: str) -> tuple[Any, Any]:
    """Chromium on the UI, signed in as admin, on the Data page."""
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(ui)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Data").wait_for(timeout=20_000)
    return browser, page


def test_browser_flow(ui: str, toy: pd.DataFrame, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path / "toy.csv"
    toy.to_csv(data, index=False)
    started = time.perf_counter()
    with sync_playwright() as p:
        browser, page = _signed_in(p, ui)
        page.screenshot(path=str(SHOTS / "signed_in.png"))

        page.get_by_text("Upload a table").click()
        _choose_file(page, data)
        page.get_by_label("Target column (optional: the labels to learn)").fill("label")
        _click(page, "Upload and validate")
        expect(page.get_by_text("Stored as dataset")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Class counts").first).to_be_visible(timeout=20_000)
        expect(page.get_by_text("Word cloud: title")).to_be_visible()
        _click(page, "Draw the map")
        expect(page.get_by_text("Texts that share words lie close: title")).to_be_visible(
            timeout=60_000
        )
        page.screenshot(path=str(SHOTS / "data.png"), full_page=True)

        _open(page, "Description", "Description")
        expect(page.get_by_role("button", name="Save descriptions")).to_be_visible()

        _open(page, "Train", "Train")
        slider = page.get_by_role("slider")
        slider.focus()
        slider.press("Home")  # the smallest budget: 10 s
        _click(page, "Start training")
        expect(page.get_by_text("Registered model-1 version 1")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Per class (cross-validated)")).to_be_visible(timeout=20_000)
        page.screenshot(path=str(SHOTS / "train.png"), full_page=True)

        _open(page, "Models", "Models")
        expect(page.get_by_role("button", name="Make champion")).to_be_visible()
        expect(page.get_by_text("Ensemble:").first).to_be_visible()

        _open(page, "Predict from input", "Predict from input")
        page.get_by_label("title").fill("bank loan money invest budget")
        page.get_by_label("store").fill("eu")
        _click(page, "Predict")
        expect(page.get_by_role("heading", name="Prediction: finance")).to_be_visible(
            timeout=20_000
        )
        page.screenshot(path=str(SHOTS / "predict_input.png"), full_page=True)

        _open(page, "Predict from file", "Predict from file")
        _choose_file(page, data)
        _click(page, "Predict")
        expect(page.get_by_text(f"{len(toy)} rows predicted with model-1")).to_be_visible(
            timeout=30_000
        )
        expect(page.get_by_text("Download CSV")).to_be_visible()
        page.screenshot(path=str(SHOTS / "predict_file.png"), full_page=True)

        _open(page, "Analysis", "Analysis")
        expect(page.get_by_text("New words (unknown to the model)")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(SHOTS / "analysis_page.png"), full_page=True)

        _open(page, "Monitoring", "Monitoring")  # the file's 240 predictions are logged
        _click(page, "Check drift now")
        expect(page.get_by_text("Drift score over time")).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile(r"working rows \(log\)"))).to_be_visible()
        expect(page.get_by_role("button", name="Download as HTML")).to_be_visible()
        page.screenshot(path=str(SHOTS / "monitoring.png"), full_page=True)

        _click(page, "Sign out")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20_000)
        browser.close()
    total = time.perf_counter() - started
    assert total < 180, f"the browser flow took {total:.0f} s"
    assert max(RENDER_SECONDS.values()) < 10  # the ≤ 2 s target is reported, not asserted


def test_browser_retrieval_page(ui: str, tmp_path: Path) -> None:
    """Upload a QA dataset, explore it, build a model, ask, benchmark, test its quality."""
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path / "squad.json"
    data.write_bytes(small_squad())
    with sync_playwright() as p:
        browser, page = _signed_in(p, ui)
        _open(page, "Retrieval", "Retrieval")

        page.get_by_text("Upload a QA dataset", exact=True).click()
        _choose_file(page, data)
        _click(page, "Upload and validate")
        expect(page.get_by_text("Stored as QA dataset")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Most frequent stop words").first).to_be_visible(timeout=20_000)
        expect(page.get_by_text("Word cloud")).to_be_visible()
        _click(page, "Draw the map")
        expect(page.get_by_text("Questions near their passages share words")).to_be_visible(
            timeout=60_000
        )
        page.screenshot(path=str(SHOTS / "retrieval_data.png"), full_page=True)

        page.get_by_role("tab", name="Build").click()
        page.get_by_text("bm25", exact=True).click()
        _click(page, "Build", exact=True)
        expect(page.get_by_text("Built qa-")).to_be_visible(timeout=60_000)
        page.screenshot(path=str(SHOTS / "retrieval_build.png"), full_page=True)

        page.get_by_role("tab", name="Ask").click()
        box = page.get_by_role("textbox", name="Question", exact=True)
        box.fill("In what country is Normandy located?")
        _click(page, "Find")
        expect(page.get_by_text("score").first).to_be_visible(timeout=20_000)
        expect(page.get_by_text("Normandy").first).to_be_visible()
        page.screenshot(path=str(SHOTS / "retrieval_ask.png"), full_page=True)

        page.get_by_role("tab", name="Benchmark and quality").click()
        _click(page, "Run the latency benchmark")
        expect(page.get_by_text("Latency per question")).to_be_visible(timeout=30_000)
        _click(page, "Run the quality test (all questions)")
        expect(page.get_by_text("MRR@10")).to_be_visible(timeout=60_000)
        page.screenshot(path=str(SHOTS / "retrieval_test.png"), full_page=True)

        page.get_by_role("tab", name="Models").click()
        expect(page.get_by_role("button", name="Unload")).to_be_visible()
        browser.close()
