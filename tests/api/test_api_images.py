"""Images over the API: a zip of table and images as the dataset, a job that trains on it,
predictions with the image as a data: URI (JSON) or an uploaded file (multipart), and bad
images named per record."""

from __future__ import annotations

import base64
import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.conftest import assert_error, new_member, wait_job

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("skimage")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from taxonomist.demo.multimodal import make_multimodal_set

    return make_multimodal_set(tmp_path_factory.mktemp("faces"))


@pytest.fixture(scope="module")
def image_model(api: TestClient, faces: Path) -> dict[str, Any]:
    """A member who uploaded the faces zip and trained a model on it."""
    headers, _ = new_member(api)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(faces, "items.csv")
        for p in (faces.parent / "images").iterdir():
            z.write(p, f"images/{p.name}")
    r = api.post(
        "/api/v1/datasets",
        files={"file": ("faces.zip", buf.getvalue(), "application/zip")},
        data={"target": "label"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["roles"]["photo"] == "image"
    name = f"faces-{uuid.uuid4().hex[:6]}"
    job = {"dataset_id": r.json()["dataset"]["id"], "model_name": name, "trials": 1}
    refused = api.post("/api/v1/jobs", json={**job, "images": "/etc"}, headers=headers)
    assert "upload a zip of the table and its images" in refused.text
    assert refused.status_code == 422
    r = api.post("/api/v1/jobs", json={**job, "families": ["linear_svm"]}, headers=headers)
    assert r.status_code == 202, r.text
    done = wait_job(api, headers, r.json()["id"], {"succeeded", "failed"}, timeout=400)
    assert done["state"] == "succeeded", done["error"]
    return {"headers": headers, "model": name}


def _uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_an_image_predicts_as_a_data_uri_and_as_an_upload(
    api: TestClient, image_model: dict[str, Any], faces: Path
) -> None:
    headers, model = image_model["headers"], image_model["model"]
    rows = pd.read_csv(faces).head(12)
    records = [
        {"title": t, "photo": _uri(faces.parent / p)}
        for t, p in zip(rows["title"], rows["photo"], strict=True)
    ]
    r = api.post("/api/v1/predict", json={"model": model, "records": records}, headers=headers)
    assert r.status_code == 200, r.text
    labels = [p["label"] for p in r.json()["predictions"]]
    assert sum(a == b for a, b in zip(labels, rows["label"], strict=True)) >= 10
    first = faces.parent / rows["photo"].iloc[0]
    r = api.post(
        "/api/v1/predict/image",
        files={"image": ("x.png", first.read_bytes(), "image/png")},
        data={"model": model, "record": f'{{"title": "{rows["title"].iloc[0]}"}}'},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == labels[0]


def test_bad_images_are_4xx_naming_the_record(
    api: TestClient, image_model: dict[str, Any], faces: Path
) -> None:
    headers, model = image_model["headers"], image_model["model"]
    good = _uri(next((faces.parent / "images").iterdir()))
    records = [
        {"title": "a", "photo": good},
        {"title": "b", "photo": "data:image/png;base64," + base64.b64encode(b"text").decode()},
        {"title": "c", "photo": "../../../etc/hostname"},
        {"title": "d", "photo": None},  # no image: predicted from the title
    ]
    r = api.post("/api/v1/predict", json={"model": model, "records": records}, headers=headers)
    error = assert_error(r, 422, "schema_mismatch")
    assert "record 1: not an image" in error["message"]
    assert "record 2: the path '../../../etc/hostname' leaves the image folder" in error["message"]
    assert [p["record"] for p in error["details"]["problems"]] == [1, 2]
    r = api.post("/api/v1/predict", json={"model": model, "records": records[::3]}, headers=headers)
    assert r.status_code == 200, r.text
    post = lambda **kw: api.post("/api/v1/predict/image", headers=headers, **kw)  # noqa: E731
    upload = {"image": ("x.png", b"GIF89a nope", "image/gif")}
    assert "not an image" in assert_error(post(files=upload, data={"model": model}), 422)["message"]
    bad_json = post(files=upload, data={"model": model, "record": "{title"})
    assert "'record' is not valid JSON" in assert_error(bad_json, 422)["message"]
    wrong = post(files=upload, data={"model": model, "column": "title"})
    assert "'title' is not an image column" in assert_error(wrong, 422)["message"]


def test_uploads_whose_images_cannot_be_read_are_refused_and_nothing_is_stored(
    api: TestClient, api_settings: Any, faces: Path
) -> None:
    headers, _ = new_member(api)
    before = api.get("/api/v1/datasets", headers=headers).json()
    folder = api_settings.datasets_dir
    files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    # the table without its images: every path is missing
    r = api.post(
        "/api/v1/datasets",
        files={"file": ("items.csv", faces.read_bytes(), "text/csv")},
        data={"target": "label"},
        headers=headers,
    )
    error = assert_error(r, 422)
    assert "Only 0 of the 200 images in column 'photo'" in error["message"]
    assert "a zip of the table and its images" in error["message"]
    assert error["details"]["problems"][0]["error"].startswith("no file 'images/")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("items.csv", faces.read_bytes())
        z.writestr("../escape.png", b"x")
    r = api.post(
        "/api/v1/datasets",
        files={"file": ("evil.zip", buf.getvalue(), "application/zip")},
        data={"target": "label"},
        headers=headers,
    )
    assert "a path outside the zip" in assert_error(r, 400)["message"]
    assert api.get("/api/v1/datasets", headers=headers).json() == before
    assert sorted(p.name for p in folder.iterdir()) == files  # no file, no unpacked folder
