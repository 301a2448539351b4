"""The REST API end to end: a real app, a real SQLite store, a real Dask LocalCluster, real
training jobs and the MLflow registry, driven over HTTP."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taxonomist.config import Settings
from tests.conftest import (
    ADMIN_PASSWORD,
    DATA,
    admin_headers,
    api_client,
    assert_error,
    login_headers,
    new_member,
    upload_table,
    wait_job,
    wait_ready,
)

PUBLIC = {"/health", "/ready"}
SCRAPE_TOKEN = "scrape-secret"


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    # test_too_large_uploads_are_413 sends 4.2 MB
    return {"max_upload_mb": 3, "metrics_token": SCRAPE_TOKEN}


@pytest.fixture(scope="module")
def trained(api: TestClient, toy: pd.DataFrame) -> dict[str, Any]:
    """A member who uploaded the toy table and trained model 'toy-<id>' on it."""
    headers, user_id = new_member(api)
    r = upload_table(api, headers, toy, target="label", name="toy")
    assert r.status_code == 201, r.text
    dataset_id = r.json()["dataset"]["id"]
    name = f"toy-{uuid.uuid4().hex[:6]}"
    r = api.post(
        "/api/v1/jobs",
        json={
            "dataset_id": dataset_id,
            "model_name": name,
            "trials": 3,
            "families": ["complement_nb", "logreg"],
        },
        headers=headers,
    )
    assert r.status_code == 202, r.text
    job = wait_job(api, headers, r.json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", job
    return {
        "headers": headers,
        "user_id": user_id,
        "dataset_id": dataset_id,
        "job": job,
        "model": name,
    }


# -- system and auth -------------------------------------------------------------------------
def test_health_and_ready_need_no_token_metrics_the_scrape_token(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").json() == {
        "status": "ready",
        "database": "ok",
        "engine": "ok",
        "servers": {},
    }
    for headers in ({}, {"Authorization": "Bearer wrong"}, new_member(api)[0]):
        assert_error(api.get("/metrics", headers=headers), 401, "unauthorized")
    for headers in ({"Authorization": f"Bearer {SCRAPE_TOKEN}"}, admin_headers(api)):
        r = api.get("/metrics", headers=headers)
        assert r.status_code == 200 and "taxonomist_requests_total" in r.text
        assert 'route="/health"' in r.text  # route templates, not raw paths


def test_every_other_endpoint_needs_a_valid_token(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        if path in PUBLIC:
            continue
        concrete = (
            path.replace("{name}", "m").replace("{alias}", "a").replace("{plot}", "per_class_f1")
        )
        for param in ("dataset_id", "job_id", "token_id", "user_id", "version"):
            concrete = concrete.replace("{" + param + "}", "1")
        for method in ops:
            if path == "/api/v1/auth/login":
                continue
            for headers in ({}, {"Authorization": "Bearer tx_forged"}):
                r = api.request(method.upper(), concrete, headers=headers)
                assert_error(r, 401, "unauthorized")
                checked += 1
    assert checked > 50


def test_login_tokens_and_logout(api: TestClient) -> None:
    assert_error(
        api.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"}), 401
    )
    headers, _ = new_member(api)
    me = api.get("/api/v1/auth/me", headers=headers).json()
    assert me["role"] == "member" and not me["disabled"]
    r = api.post(
        "/api/v1/auth/tokens", json={"name": "notebook", "expires_days": 7}, headers=headers
    )
    assert r.status_code == 201
    token = r.json()
    personal = {"Authorization": f"Bearer {token['token']}"}
    assert api.get("/api/v1/auth/me", headers=personal).json()["id"] == me["id"]
    listed = api.get("/api/v1/auth/tokens", headers=headers).json()
    assert {t["name"] for t in listed} == {"login", "notebook"}
    assert all("token" not in t for t in listed)  # secrets are shown once, never listed
    assert api.delete(f"/api/v1/auth/tokens/{token['id']}", headers=headers).status_code == 204
    assert_error(api.get("/api/v1/auth/me", headers=personal), 401)
    assert api.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert_error(api.get("/api/v1/auth/me", headers=headers), 401)


def test_users_are_managed_by_admins_only(api: TestClient) -> None:
    headers, user_id = new_member(api)
    body = {"username": "eve-x", "password": "password-123"}
    assert_error(api.post("/api/v1/users", json=body, headers=headers), 403, "forbidden")
    assert_error(api.get("/api/v1/users", headers=headers), 403)
    assert_error(
        api.patch(f"/api/v1/users/{user_id}", json={"role": "admin"}, headers=headers), 403
    )
    a = admin_headers(api)
    assert api.post("/api/v1/users", json=body, headers=a).status_code == 201
    assert_error(api.post("/api/v1/users", json=body, headers=a), 409, "conflict")
    assert_error(
        api.post("/api/v1/users", json={**body, "username": "x2", "password": "s"}, headers=a), 422
    )
    # Disabling a user locks out their tokens at once.
    r = api.patch(f"/api/v1/users/{user_id}", json={"disabled": True}, headers=a)
    assert r.status_code == 200 and r.json()["disabled"]
    assert_error(api.get("/api/v1/auth/me", headers=headers), 401)
    # The last admin can be neither demoted nor disabled.
    assert_error(api.patch("/api/v1/users/1", json={"role": "member"}, headers=a), 409)
    assert_error(api.patch("/api/v1/users/999999", json={"role": "member"}, headers=a), 404)


# -- datasets --------------------------------------------------------------------------------
MALFORMED = sorted(p.name for p in (DATA / "malformed").iterdir())


@pytest.mark.parametrize("filename", MALFORMED)
def test_unusable_uploads_are_4xx_and_nothing_is_stored(
    api: TestClient, api_settings: Settings, filename: str
) -> None:
    headers, _ = new_member(api)
    folder = Path(api_settings.datasets_dir)
    before = set(folder.iterdir()) if folder.exists() else set()
    with (DATA / "malformed" / filename).open("rb") as f:
        r = api.post(
            "/api/v1/datasets",
            files={"file": (filename, f)},
            data={"target": "label"},
            headers=headers,
        )
    if r.status_code == 201:  # readable but dubious: then it must say why in warnings
        assert r.json()["warnings"], filename
        return
    err = assert_error(r, r.status_code)
    assert 400 <= r.status_code < 500, (filename, r.text)
    assert len(err["message"]) > 20
    assert api.get("/api/v1/datasets", headers=headers).json() == []
    after = set(folder.iterdir()) if folder.exists() else set()
    assert after == before  # no stray file, no .part


def test_too_large_uploads_are_413(api: TestClient) -> None:
    headers, _ = new_member(api)
    big = io.BytesIO(b"text,label\n" + b"hello world,a\n" * 300_000)  # 4.2 MB > 3 MB
    r = api.post("/api/v1/datasets", files={"file": ("big.csv", big)}, headers=headers)
    assert_error(r, 413, "payload_too_large")
    assert api.get("/api/v1/datasets", headers=headers).json() == []


def test_dataset_roles_can_be_edited_then_downloaded_and_deleted(
    api: TestClient, toy: pd.DataFrame
) -> None:
    headers, _ = new_member(api)
    r = upload_table(api, headers, toy)  # no target yet
    assert r.status_code == 201
    body = r.json()
    ds = body["dataset"]["id"]
    assert body["roles"]["title"] == "text" and body["dataset"]["n_rows"] == len(toy)
    assert any("target" in w for w in body["warnings"])
    r = api.patch(
        f"/api/v1/datasets/{ds}",
        json={"target": "label", "roles": {"store": "ignore"}},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["roles"] == {
        "title": "text",
        "store": "ignore",
        "price": "numeric",
        "label": "target",
    }
    detail = api.get(f"/api/v1/datasets/{ds}", headers=headers).json()
    assert detail["profile"]["class_counts"] == toy["label"].value_counts().to_dict()
    stats = detail["profile"]["columns"]["title"]["stats"]
    assert sum(stats["words_histogram"]["counts"]) == len(toy) and stats["vocabulary"]["the"] > 0
    assert_error(
        api.patch(f"/api/v1/datasets/{ds}", json={"target": "lable"}, headers=headers),
        422,
        "column_not_found",
    )
    r = api.patch(
        f"/api/v1/datasets/{ds}", json={"descriptions": {"title": "app name"}}, headers=headers
    )
    assert r.status_code == 200 and r.json()["roles"]["store"] == "ignore"  # kept
    detail = api.get(f"/api/v1/datasets/{ds}", headers=headers).json()
    assert detail["descriptions"] == {"title": "app name"}
    err = assert_error(
        api.patch(f"/api/v1/datasets/{ds}", json={"descriptions": {"titel": "x"}}, headers=headers),
        422,
        "column_not_found",
    )
    assert "titel" in err["message"]
    r = api.get(
        f"/api/v1/datasets/{ds}/map", params={"column": "title", "sample": 100}, headers=headers
    )
    assert r.status_code == 200, r.text
    points = pd.DataFrame(r.json()["points"])
    assert len(points) == 100 and set(points["label"]) == {"cooking", "finance", "sport"}
    assert points[["x", "y"]].notna().all().all()
    # Texts of one class share words, so a point's nearest neighbour mostly has its class.
    xy = points[["x", "y"]].to_numpy()
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    d[range(len(d)), range(len(d))] = float("inf")
    same = (points["label"].to_numpy()[d.argmin(1)] == points["label"].to_numpy()).mean()
    assert same > 0.6
    assert_error(
        api.get(f"/api/v1/datasets/{ds}/map", params={"column": "price"}, headers=headers), 422
    )
    r = api.get(f"/api/v1/datasets/{ds}/download", headers=headers)
    assert r.status_code == 200 and r.content.decode() == toy.to_csv(index=False)
    assert api.delete(f"/api/v1/datasets/{ds}", headers=headers).status_code == 204
    assert_error(api.get(f"/api/v1/datasets/{ds}", headers=headers), 404)


def test_wrong_json_types_are_422_with_the_field(api: TestClient) -> None:
    headers, _ = new_member(api)
    r = api.post("/api/v1/jobs", json={"dataset_id": "one", "model_name": "x"}, headers=headers)
    err = assert_error(r, 422, "invalid_request")
    assert "dataset_id" in err["message"]
    r = api.post(
        "/api/v1/jobs",
        content=b"{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_error(r, 422)
    r = api.post(
        "/api/v1/jobs", json={"dataset_id": 1, "model_name": "x", "time_budget": 1}, headers=headers
    )
    assert "time_budget" in assert_error(r, 422)["message"]
    assert_error(
        api.post("/api/v1/predict", json={"model": "x", "records": 3}, headers=headers), 422
    )


# -- jobs, models, predictions ---------------------------------------------------------------
def test_a_training_job_reports_progress_logs_and_its_model(
    api: TestClient, trained: dict[str, Any]
) -> None:
    job, headers = trained["job"], trained["headers"]
    assert job["progress"]["trials_done"] == 3 and job["progress"]["best_score"] > 0.5
    assert job["result"]["model"] == trained["model"] and job["result"]["version"] == 1
    assert set(job["result"]["ensemble"]) <= {"complement_nb", "logreg"}
    assert job["started_at"] and job["finished_at"] and job["error"] is None
    assert "dataset_path" not in job["config"]  # no server paths in responses
    logs = api.get(f"/api/v1/jobs/{job['id']}/logs", headers=headers).json()
    assert any("families" in line for line in logs["lines"])
    models = api.get("/api/v1/models", headers=headers).json()
    assert [m["name"] for m in models] == [trained["model"]]
    assert models[0]["owner_id"] == trained["user_id"]
    assert models[0]["versions"][0]["aliases"] == ["champion"]


def test_a_job_with_promote_makes_its_version_champion(
    api: TestClient, trained: dict[str, Any]
) -> None:
    headers, name = trained["headers"], f"promoted-{uuid.uuid4().hex[:6]}"
    body = {"dataset_id": trained["dataset_id"], "model_name": name, "trials": 1}
    body["families"] = ["logreg"]

    def train(**extra: Any) -> dict[str, Any]:
        r = api.post("/api/v1/jobs", json=body | extra, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json()["config"]["promote"] is extra.get("promote", False)
        job = wait_job(api, headers, r.json()["id"], {"succeeded", "failed", "cancelled"})
        assert job["state"] == "succeeded", job
        return job["result"]

    assert train()["promoted"] is True  # the first version
    assert train()["promoted"] is False  # the same score does not beat the champion
    assert train(promote=True)["promoted"] is True
    versions = api.get(f"/api/v1/models/{name}", headers=headers).json()["versions"]
    assert [(v["version"], v["aliases"]) for v in versions] == [(3, ["champion"]), (2, []), (1, [])]
    assert {v["dataset_id"] for v in versions} == {trained["dataset_id"]}
    detail = api.get(f"/api/v1/models/{name}/versions/3", headers=headers).json()
    assert detail["config"]["promote"] is True and detail["config"]["trials"] == 1
    assert "data" not in detail["config"]  # no server paths in responses


def test_predictions_single_batch_explained_and_from_a_file(
    api: TestClient, trained: dict[str, Any], toy: pd.DataFrame
) -> None:
    headers, name = trained["headers"], trained["model"]
    record = toy.drop(columns="label").iloc[0].to_dict()
    r = api.post("/api/v1/predict", json={"model": name, "records": record}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == name and body["version"] == 1
    (p,) = body["predictions"]
    assert set(p["probabilities"]) == {"cooking", "finance", "sport"}
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-4
    assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
    batch = toy.drop(columns="label").to_dict("records")
    for ref in (name, f"{name}@champion", f"{name}/1"):
        r = api.post("/api/v1/predict", json={"model": ref, "records": batch}, headers=headers)
        labels = [q["label"] for q in r.json()["predictions"]]
        assert (pd.Series(labels) == toy["label"]).mean() > 0.8
    r = api.post(
        "/api/v1/predict",
        json={"model": name, "records": [record], "explain": True, "top": 3},
        headers=headers,
    )
    explanation = r.json()["predictions"][0]["explanation"]
    assert explanation and explanation["label"] == r.json()["predictions"][0]["label"]
    for output, reader in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        r = api.post(
            "/api/v1/predict/file",
            files={"file": ("rows.csv", toy.to_csv(index=False).encode())},
            data={"model": name, "output": output},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        out = reader(io.BytesIO(r.content))
        assert len(out) == len(toy) and (out["prediction"] == toy["label"]).mean() > 0.8
    metrics = api.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}).text
    # no class label by default: class names stay private and series few
    assert f'taxonomist_predictions_total{{model="{name}"}}' in metrics
    assert f'taxonomist_predicted_probability_count{{model="{name}"}}' in metrics


def test_working_data_is_compared_with_the_training_data(
    api: TestClient, trained: dict[str, Any], toy: pd.DataFrame
) -> None:
    headers, name = trained["headers"], trained["model"]
    work = toy.drop(columns="label").head(40).copy()
    work["title"] = work["title"] + " blockchain"  # a word the model has never seen
    r = api.post(
        "/api/v1/predict/compare",
        files={"file": ("work.csv", work.to_csv(index=False).encode())},
        data={"model": name},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_rows"] == 40 and sum(body["class_counts"]["predicted"].values()) == 40
    assert body["class_counts"]["training"] == toy["label"].value_counts().to_dict()
    title = body["text"]["title"]
    assert title["new_words"]["top"] == {"blockchain": 40} and title["new_words"]["count"] == 1
    assert sum(title["words_histogram"]["working"]) == 40
    assert sum(title["words_histogram"]["training"]) == len(toy)


def test_prediction_input_errors_are_4xx(api: TestClient, trained: dict[str, Any]) -> None:
    headers, name = trained["headers"], trained["model"]
    post = lambda body: api.post("/api/v1/predict", json=body, headers=headers)  # noqa: E731
    assert_error(post({"model": name, "records": {"titel": "x"}}), 422, "schema_mismatch")
    err = assert_error(
        post({"model": name, "records": {"title": "a", "store": "eu", "price": "cheap"}}), 422
    )
    assert "numeric" in err["message"]
    assert_error(post({"model": name, "records": []}), 422)
    assert_error(post({"model": "no-such-model", "records": {"title": "a"}}), 404)
    assert_error(post({"model": f"{name}/x", "records": {"title": "a"}}), 422)
    assert_error(post({"model": f"{name}/9", "records": {"title": "a"}}), 404)
    assert_error(post({"model": name, "records": [1, 2]}), 422)


def test_jobs_are_listed_by_state(api: TestClient, trained: dict[str, Any]) -> None:
    headers, job_id = trained["headers"], trained["job"]["id"]

    def listed(state: str) -> list[int]:
        r = api.get("/api/v1/jobs", params={"state": state}, headers=headers)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()]

    assert job_id in listed("succeeded") and job_id not in listed("running")
    err = assert_error(api.get("/api/v1/jobs", params={"state": "done"}, headers=headers), 422)
    assert "'succeeded'" in err["message"]  # the states come from JobState


def test_records_missing_columns_are_predicted_with_warnings(
    api: TestClient, trained: dict[str, Any], toy: pd.DataFrame
) -> None:
    headers, name = trained["headers"], trained["model"]
    post = lambda records: api.post(  # noqa: E731
        "/api/v1/predict", json={"model": name, "records": records}, headers=headers
    )
    record = toy.drop(columns="label").iloc[0].to_dict()
    whole = post(record)
    assert whole.status_code == 200, whole.text
    assert whole.json()["warnings"] == []
    # Columns no record has are predicted as missing values, and said so.
    r = post({"title": record["title"]})
    assert r.status_code == 200, r.text
    (p,) = r.json()["predictions"]
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-4
    (warning,) = r.json()["warnings"]
    assert "missing" in warning and warning.endswith(": store, price.")
    # A column present in one record of a batch is not missing.
    r = post([{"title": record["title"]}, {"title": "bank loan", "store": "eu"}])
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    (warning,) = r.json()["warnings"]
    assert warning.endswith(": price.")
    # Unknown columns are ignored (the prediction is the whole record's), and said so.
    r = post({**record, "colour": "red", "size": 3})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == whole.json()["predictions"]
    (warning,) = r.json()["warnings"]
    assert "ignored" in warning and warning.endswith(": colour, size.")
    # None of the model's columns: nothing to predict from.
    err = assert_error(post({"colour": "red"}), 422, "schema_mismatch")
    assert "title" in err["message"]
    # A file says so in a header (a JSON list), and only when there is something to say.
    for frame, warned in ((toy.drop(columns="label"), False), (toy[["title"]], True)):
        r = api.post(
            "/api/v1/predict/file",
            files={"file": ("rows.csv", frame.to_csv(index=False).encode())},
            data={"model": name},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert len(pd.read_csv(io.BytesIO(r.content))) == len(toy)
        header = r.headers.get("X-Taxonomist-Warnings")
        assert (header is not None) == warned
        if warned:
            (warning,) = json.loads(header)
            assert warning.endswith(": store, price.")


def test_models_can_be_inspected_loaded_aliased_and_unloaded(
    api: TestClient, trained: dict[str, Any]
) -> None:
    headers, name = trained["headers"], trained["model"]
    detail = api.get(f"/api/v1/models/{name}/versions/1", headers=headers).json()
    assert detail["classes"] == ["cooking", "finance", "sport"]
    assert detail["roles"]["title"] == "text" and detail["profile"]["n_rows"] == 240
    per_class = detail["evaluation"]["per_class"]
    assert set(per_class) == {"cooking", "finance", "sport"}
    assert sum(c["support"] for c in per_class.values()) == 240
    png = api.get(detail["plots"]["confusion_matrix"], headers=headers)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    r = api.post(f"/api/v1/models/{name}/load", headers=headers)
    assert r.json() == {"name": name, "version": 1}
    assert {"name": name, "version": 1} in api.get("/api/v1/models/loaded", headers=headers).json()
    r = api.put(f"/api/v1/models/{name}/aliases/staging", json={"version": 1}, headers=headers)
    assert r.status_code == 200
    assert api.post(f"/api/v1/models/{name}/load?alias=staging", headers=headers).status_code == 200
    assert_error(
        api.put(f"/api/v1/models/{name}/aliases/staging", json={"version": 7}, headers=headers), 404
    )
    assert api.post(f"/api/v1/models/{name}/unload", headers=headers).json()["unloaded"] == 1
    loaded = api.get("/api/v1/models/loaded", headers=headers).json()
    assert name not in {m["name"] for m in loaded}


def test_members_never_see_or_touch_others_resources(
    api: TestClient, trained: dict[str, Any]
) -> None:
    other, _ = new_member(api)
    a = admin_headers(api)
    ds, job, name = trained["dataset_id"], trained["job"]["id"], trained["model"]
    owner = trained["headers"]
    calls = [
        ("GET", f"/api/v1/datasets/{ds}", None),
        ("GET", f"/api/v1/datasets/{ds}/download", None),
        ("PATCH", f"/api/v1/datasets/{ds}", {"name": "mine"}),
        ("GET", f"/api/v1/jobs/{job}", None),
        ("GET", f"/api/v1/jobs/{job}/logs", None),
        ("GET", f"/api/v1/models/{name}", None),
        ("GET", f"/api/v1/models/{name}/versions/1", None),
        ("GET", f"/api/v1/models/{name}/versions/1/plots/per_class_f1", None),
        ("POST", f"/api/v1/models/{name}/load", None),
        ("POST", f"/api/v1/models/{name}/unload", None),
        ("PUT", f"/api/v1/models/{name}/aliases/champion", {"version": 1}),
        (
            "POST",
            "/api/v1/predict",
            {"model": name, "records": {"title": "x", "store": "eu", "price": 1}},
        ),
    ]
    for method, url, body in calls:
        for headers in (owner, a):
            assert api.request(method, url, json=body, headers=headers).status_code == 200, url
        assert_error(api.request(method, url, json=body, headers=other), 404)
    # Lists hold only one's own; destructive calls on others' ids are refused the same way.
    assert api.get("/api/v1/datasets", headers=other).json() == []
    assert api.get("/api/v1/jobs", headers=other).json() == []
    assert api.get("/api/v1/models", headers=other).json() == []
    assert ds in [d["id"] for d in api.get("/api/v1/datasets", headers=a).json()]
    for method, url in [
        ("POST", f"/api/v1/jobs/{job}/cancel"),
        ("DELETE", f"/api/v1/models/{name}/versions/1"),
        ("DELETE", f"/api/v1/models/{name}"),
        ("DELETE", f"/api/v1/datasets/{ds}"),
        ("DELETE", "/api/v1/models"),
    ]:
        assert api.request(method, url, headers=other).status_code in (403, 404), url
    r = api.post("/api/v1/jobs", json={"dataset_id": ds, "model_name": "steal"}, headers=other)
    assert_error(r, 404)
    own = upload_table(
        api, other, pd.DataFrame({"t": ["a b", "c d"] * 10, "y": ["p", "q"] * 10}), target="y"
    ).json()["dataset"]["id"]
    r = api.post("/api/v1/jobs", json={"dataset_id": own, "model_name": name}, headers=other)
    assert_error(r, 409, "conflict")  # the model name is someone else's
    assert api.get(f"/api/v1/models/{name}", headers=owner).status_code == 200  # intact


def test_queue_cancel_and_a_dead_worker(api: TestClient, toy: pd.DataFrame) -> None:
    import signal

    headers, _ = new_member(api)
    ds = upload_table(api, headers, toy, target="label").json()["dataset"]["id"]
    start = lambda name: api.post(  # noqa: E731
        "/api/v1/jobs",
        json={"dataset_id": ds, "model_name": name, "time_budget": 120},
        headers=headers,
    ).json()["id"]
    first, second = start("slow-a"), start("slow-b")
    wait_job(api, headers, first, {"running"}, timeout=30)
    # One job at a time (max_concurrent_jobs=1): the second waits, and cancels at once.
    assert api.get(f"/api/v1/jobs/{second}", headers=headers).json()["state"] == "queued"
    r = api.post(f"/api/v1/jobs/{second}/cancel", headers=headers)
    assert r.status_code == 200
    assert wait_job(api, headers, second, {"cancelled"}, timeout=10)["state"] == "cancelled"
    # A running job stops at its next trial.
    wait_until = time.monotonic() + 30
    while (
        api.get(f"/api/v1/jobs/{first}", headers=headers).json()["progress"].get("trials_done", 0)
        < 1
    ):
        assert time.monotonic() < wait_until
        time.sleep(0.2)
    api.post(f"/api/v1/jobs/{first}/cancel", headers=headers)
    job = wait_job(api, headers, first, {"cancelled", "failed", "succeeded"}, timeout=60)
    assert job["state"] == "cancelled", job
    assert job["finished_at"] and job["progress"]["elapsed"] < 100
    assert_error(api.post(f"/api/v1/jobs/{first}/cancel", headers=headers), 409)
    # A worker that dies takes its job with it; the job says so and the service goes on.
    third = start("killed")
    wait_job(api, headers, third, {"running"}, timeout=30)
    engine = api.app.state.services.engine
    for pid in engine.client.run(os.getpid).values():
        os.kill(pid, signal.SIGKILL)
    job = wait_job(api, headers, third, {"failed", "succeeded", "cancelled"}, timeout=60)
    assert job["state"] == "failed" and "worker" in job["error"], job
    wait_ready(api)


def test_a_restarted_service_shows_every_job_and_fails_orphans(
    api: TestClient, api_settings: Settings, toy: pd.DataFrame
) -> None:
    from sqlalchemy import update

    from taxonomist.store import Job

    headers, _ = new_member(api)
    ds = upload_table(api, headers, toy, target="label").json()["dataset"]["id"]
    job = api.post(
        "/api/v1/jobs",
        json={"dataset_id": ds, "model_name": "orphan", "time_budget": 60},
        headers=headers,
    ).json()["id"]
    api.post(f"/api/v1/jobs/{job}/cancel", headers=headers)
    wait_job(api, headers, job, {"cancelled"}, timeout=60)
    svc = api.app.state.services
    with svc.db.session() as s:  # as if the service had died while the job ran
        s.execute(update(Job).where(Job.id == job).values(state="running"))
    before = {j["id"] for j in api.get("/api/v1/jobs", headers=admin_headers(api)).json()}
    with api_client(api_settings) as again:
        a = login_headers(again, "admin", ADMIN_PASSWORD)
        assert {j["id"] for j in again.get("/api/v1/jobs", headers=a).json()} == before
        orphan = wait_job(again, a, job, {"failed"}, timeout=30)  # no lease: failed at once
        # (or by its own task, if Dask still ran it: a running job's task run again)
        assert orphan["error"].startswith(
            ("The process running this job stopped", "The worker running this job died")
        ), orphan


@pytest.mark.postgres
def test_the_service_runs_on_postgresql(tmp_path: Path, toy: pd.DataFrame) -> None:
    """The same app on a PostgreSQL metadata store: accounts, an upload, a training job that
    its Dask worker reports on, and the audit log."""
    from sqlalchemy import create_engine, text

    from tests.conftest import _postgres_url

    server = _postgres_url()
    name = f"taxonomist_api_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.rsplit("/", 1)[0] + f"/{name}"
    settings = Settings(home=tmp_path / "home", admin_password=ADMIN_PASSWORD, database_url=url)
    try:
        with api_client(settings) as client:
            headers, _ = new_member(client)
            ds = upload_table(client, headers, toy, target="label").json()["dataset"]["id"]
            r = client.post(
                "/api/v1/jobs",
                json={
                    "dataset_id": ds,
                    "model_name": "pg-toy",
                    "trials": 1,
                    "families": ["complement_nb"],
                },
                headers=headers,
            )
            job = wait_job(client, headers, r.json()["id"], {"succeeded", "failed"})
            assert job["state"] == "succeeded", job
            assert job["created_at"].endswith(("Z", "+00:00"))
            r = client.post(
                "/api/v1/predict",
                json={
                    "model": "pg-toy",
                    "records": {"title": "bank loan", "store": "eu", "price": 1},
                },
                headers=headers,
            )
            assert r.json()["predictions"][0]["label"] == "finance"
        with create_engine(url).connect() as conn:
            actions = {a for (a,) in conn.execute(text("SELECT action FROM audit_log"))}
        assert {"create_first_admin", "login", "upload_dataset", "create_job"} <= actions
    finally:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()
