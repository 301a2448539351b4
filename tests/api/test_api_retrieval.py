"""Retrieval over the REST API: QA datasets, models built as jobs, load/unload, search,
benchmark, quality test, removal; with the same auth and error rules as the rest."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taxonomist.config import Settings
from tests.conftest import admin_headers, assert_error, new_member, small_squad, wait_job

API = "/api/v1/retrieval"


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_mb": 3}


def upload_qa(
    api: TestClient, headers: dict[str, str], content: bytes, filename: str, **form: str
) -> Any:
    return api.post(
        f"{API}/datasets",
        files={"file": (filename, io.BytesIO(content), "application/octet-stream")},
        data=form,
        headers=headers,
    )


@pytest.fixture(scope="module")
def built(api: TestClient) -> dict[str, Any]:
    """A member's QA dataset and a BM25 model 'qa-bm25' built on it."""
    headers, user_id = new_member(api)
    r = upload_qa(api, headers, small_squad(), "squad.json", name="squad sample")
    assert r.status_code == 201, r.text
    dataset_id = r.json()["dataset"]["id"]
    body = {"name": "qa-bm25", "dataset_id": dataset_id, "params": {"method": "bm25"}}
    r = api.post(f"{API}/models", json=body, headers=headers)
    assert r.status_code == 202, r.text
    job = wait_job(api, headers, r.json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", job
    assert job["kind"] == "retrieval_build" and job["progress"]["total"] > 0
    return {"headers": headers, "dataset_id": dataset_id, "user_id": user_id, "job": job}


def test_upload_reports_and_explores_a_qa_dataset(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    detail = api.get(f"{API}/datasets/{built['dataset_id']}", headers=h).json()
    assert detail["kind"] == "qa" and detail["report"]["passages"] == 40
    profile = detail["profile"]
    assert profile["language"] == "en" and profile["passages"] == 40
    assert len(profile["words_per_question"]) == detail["report"]["questions"]
    assert profile["frequent_stop_words"][0][0] == "the"
    assert all(w not in {"the", "of"} for w, _ in profile["frequent_words"])
    ids = [d["id"] for d in api.get(f"{API}/datasets", headers=h).json()]
    assert built["dataset_id"] in ids
    # QA datasets are not offered for training, and tables are not QA datasets.
    r = api.patch(f"/api/v1/datasets/{built['dataset_id']}", json={"target": "x"}, headers=h)
    assert "question-answer dataset" in assert_error(r, 422)["message"]
    assert built["dataset_id"] not in [
        d["id"] for d in api.get("/api/v1/datasets", headers=h).json()
    ]
    table = api.post(
        "/api/v1/datasets",
        files={"file": ("t.csv", io.BytesIO(b"context,question\na b c,d e?\n"), "text/csv")},
        headers=h,
    ).json()["dataset"]["id"]
    r = api.post(f"{API}/models", json={"name": "t", "dataset_id": table}, headers=h)
    assert "is a table, not a question-answer dataset" in assert_error(r, 422)["message"]


def test_a_table_with_chosen_columns(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    csv = (
        b"passage,q\nParis is the capital of France.,What is the capital of France?\n"
        b"The Nile flows through Egypt.,Where does the Nile flow?\n"
    )
    r = upload_qa(api, h, csv, "qa.csv", context="passage", question="q")
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["roles"] == {"passage": "context", "q": "question"}


@pytest.mark.parametrize(
    "content, filename, form, status, needle",
    [
        (b'{"items": []}', "qa.json", {}, 400, "not SQuAD-style"),
        (b'{"data": [', "qa.json", {}, 400, "not valid JSON"),
        (b"context,questoin\na b,c?\n", "qa.csv", {}, 422, "Did you mean 'questoin'"),
        (b"context,question\n,a?\n,b?\n", "qa.csv", {}, 422, "no passages"),
        (b"\x00\x01\x02garbage", "qa.parquet", {}, 400, None),
        (b"x" * 3_500_000, "qa.csv", {}, 413, "upload limit"),
    ],
)
def test_bad_qa_uploads_are_refused_and_not_stored(
    api: TestClient,
    api_settings: Settings,
    content: bytes,
    filename: str,
    form: dict[str, str],
    status: int,
    needle: str | None,
) -> None:
    h, _ = new_member(api)
    before = sorted(p.name for p in api_settings.datasets_dir.glob("*"))
    r = upload_qa(api, h, content, filename, **form)
    err = assert_error(r, status)
    if needle:
        assert needle in err["message"]
    assert sorted(p.name for p in api_settings.datasets_dir.glob("*")) == before
    assert api.get(f"{API}/datasets", headers=h).json() == []


def test_search_load_unload_benchmark_and_quality(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    [model] = api.get(f"{API}/models", headers=h).json()
    assert model["id"] == "qa-bm25" and model["params"]["method"] == "bm25"
    assert model["params"]["k1"] == 1.2 and model["n_passages"] == 40
    assert model["backend"] == "qdrant-edge" and model["loaded"] is False
    assert api.post(f"{API}/models/qa-bm25/load", headers=h).json()["loaded"] is True
    r = api.post(
        f"{API}/models/qa-bm25/search",
        json={"question": "In what country is Normandy located?", "k": 3},
        headers=h,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert len(answer["passages"]) == 3 and answer["passages"][0]["rank"] == 1
    assert "Normandy" in answer["passages"][0]["context"]
    scores = [p["score"] for p in answer["passages"]]
    assert scores == sorted(scores, reverse=True)
    bench = api.post(
        f"{API}/models/qa-bm25/benchmark",
        json={"dataset_id": built["dataset_id"], "n": 30},
        headers=h,
    ).json()
    assert bench["n"] == 30 and len(bench["ms"]) == 30
    assert 0 < bench["p50_ms"] <= bench["p99_ms"] < 1000
    assert sum(bench["histogram"]["counts"]) == 30
    r = api.post(
        f"{API}/models/qa-bm25/evaluate", json={"dataset_id": built["dataset_id"]}, headers=h
    )
    assert r.status_code == 202, r.text
    job = wait_job(api, h, r.json()["id"], {"succeeded", "failed"})
    result = job["result"]
    assert job["state"] == "succeeded", job
    assert result["n"] == 216 and result["top1"] > 0.7
    assert result["top1"] <= result["mrr10"] <= result["top5"] <= 1
    assert api.post(f"{API}/models/qa-bm25/unload", headers=h).json()["loaded"] is False


def test_map_job(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    r = api.post(f"{API}/datasets/{built['dataset_id']}/map", json={"sample": 200}, headers=h)
    assert r.status_code == 202, r.text
    job = wait_job(api, h, r.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job
    points = job["result"]["points"]
    assert len(points) == 200 and {p["label"] for p in points} == {"passage", "question"}


def test_bad_requests_and_other_users(api: TestClient, built: dict[str, Any]) -> None:
    h, ds = built["headers"], built["dataset_id"]
    other, _ = new_member(api)
    # Another member sees neither the model nor the dataset, and cannot take the name.
    assert_error(
        api.post(f"{API}/models/qa-bm25/search", json={"question": "x"}, headers=other), 404
    )
    assert api.get(f"{API}/models", headers=other).json() == []
    assert_error(
        api.post(f"{API}/models", json={"name": "x", "dataset_id": ds}, headers=other), 404
    )
    body = {"name": "qa-bm25", "dataset_id": ds, "params": {"method": "bm25"}}
    assert "exists" in assert_error(api.post(f"{API}/models", json=body, headers=h), 409)["message"]
    for bad in (
        {"name": "bad name!", "dataset_id": ds},
        {"name": "ok", "dataset_id": ds, "params": {"method": "magic"}},
        {"name": "ok", "dataset_id": ds, "params": {"k1": "high"}},
        {"name": "ok", "dataset_id": ds, "params": {"typo": 1}},
        {"name": "ok", "dataset_id": "one"},
    ):
        assert_error(api.post(f"{API}/models", json=bad, headers=h), 422)
    for bad in ({"question": ""}, {"question": "   "}, {"question": "x", "k": 0}, {"k": 3}):
        assert_error(api.post(f"{API}/models/qa-bm25/search", json=bad, headers=h), 422)
    assert_error(api.post(f"{API}/models/nope/search", json={"question": "x"}, headers=h), 404)
    assert_error(api.get(f"{API}/models", headers={}), 401)
    assert_error(api.delete(f"{API}/models", headers=h), 403)


def test_a_cancelled_build_leaves_no_model(api: TestClient, built: dict[str, Any]) -> None:
    h, ds = built["headers"], built["dataset_id"]
    job = api.post(f"{API}/models", json={"name": "cancelled", "dataset_id": ds}, headers=h)
    assert job.status_code == 202, job.text
    assert api.post(f"/api/v1/jobs/{job.json()['id']}/cancel", headers=h).status_code == 200
    ended = wait_job(api, h, job.json()["id"], {"succeeded", "failed", "cancelled"})
    assert ended["state"] == "cancelled", ended
    assert_error(api.get(f"{API}/models/cancelled", headers=h), 404)


def test_remove_one_and_all(api: TestClient, api_settings: Settings, built: dict[str, Any]) -> None:
    h, ds = built["headers"], built["dataset_id"]
    for name in ("gone-1", "gone-2"):
        body = {"name": name, "dataset_id": ds, "params": {"method": "bm25", "sentences": False}}
        job = api.post(f"{API}/models", json=body, headers=h).json()
        assert wait_job(api, h, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    assert api.delete(f"{API}/models/gone-1", headers=h).status_code == 204
    assert_error(api.get(f"{API}/models/gone-1", headers=h), 404)
    assert api.delete(f"{API}/models", headers=admin_headers(api)).json()["removed"] >= 2
    assert api.get(f"{API}/models", headers=h).json() == []
    assert list((api_settings.home / "retrieval" / "collections").iterdir()) == []
