"""Pictures in a real browser: upload a zip of a table and its images, train on it, and
predict a record whose image is picked in the form. Its own API and UI (a fresh home: the
only dataset and model are this test's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ui.test_browser import SHOTS, _choose_file, _click, _open, _signed_in, chromium, ui

__all__ = ["chromium", "ui"]  # the fixtures, imported to be used here

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("skimage")
pytestmark = pytest.mark.slow


def test_a_zip_trains_and_the_form_predicts_from_a_picked_image(ui: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from taxonomist.demo.multimodal import make_multimodal_set, make_multimodal_zip

    archive = make_multimodal_zip(tmp_path / "faces.zip")
    face = make_multimodal_set(tmp_path / "loose").parent / "images" / "000.png"  # a face
    with sync_playwright() as p:
        browser, page = _signed_in(p, ui)
        page.get_by_text("Upload a table").click()
        _choose_file(page, archive)
        page.get_by_label("Target column (optional: the labels to learn)").fill("label")
        _click(page, "Upload and validate")
        expect(page.get_by_text("Stored as dataset")).to_be_visible(timeout=60_000)

        _open(page, "Train", "Train")
        _click(page, "Start training")
        expect(page.get_by_text(re.compile(r"Registered model-\d+ version 1"))).to_be_visible(
            timeout=180_000
        )

        _open(page, "Predict from input", "Predict from input")
        page.get_by_label("title").fill("deluxe garden item 12")
        page.locator("input[type=file]").first.set_input_files(str(face))
        expect(page.get_by_role("button", name=f"Remove {face.name}")).to_be_visible(timeout=20_000)
        _click(page, "Predict")
        expect(page.get_by_role("heading", name="Prediction: garden/face")).to_be_visible(
            timeout=30_000
        )
        page.screenshot(path=str(SHOTS / "predict_image.png"), full_page=True)
        browser.close()
