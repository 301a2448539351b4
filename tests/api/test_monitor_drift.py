"""Drift reports, retraining and policies over HTTP: computed, stored, listed and exported;
bad requests refused with nothing stored; retrain jobs journalled; a policy that fires."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taxonomist.api.services.monitor import run_policies
from tests.conftest import assert_error, new_member, upload_table, wait_job


@pytest.fixture(scope="module")
def model(api: TestClient, toy: pd.DataFrame) -> dict[str, Any]:
    """A member's model trained on 150 toy rows (the other 90 are new data)."""
    headers, user_id = new_member(api)
    dataset = upload_table(api, headers, toy.head(150), target="label").json()["dataset"]["id"]
    name = f"drift-{uuid.uuid4().hex[:6]}"
    body = {"dataset_id": dataset, "model_name": name, "trials": 1, "families": ["logreg"]}
    job = api.post("/api/v1/jobs", json=body, headers=headers).json()
    assert wait_job(api, headers, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    return {"headers": headers, "user_id": user_id, "name": name}


def csv(df: pd.DataFrame) -> dict[str, Any]:
    return {"file": ("rows.csv", df.to_csv(index=False).encode())}


def test_drift_reports_are_computed_stored_listed_and_exported(
    api: TestClient, model: dict[str, Any], toy: pd.DataFrame
) -> None:
    headers, name = model["headers"], model["name"]
    base = f"/api/v1/monitor/{name}"
    err = assert_error(api.post(f"{base}/drift", headers=headers), 422)
    assert "0 logged prediction(s)" in err["message"] and "monitor drift" in err["message"]
    working = toy.tail(90).drop(columns="label")
    r = api.post("/api/v1/predict/file", files=csv(working), data={"model": name}, headers=headers)
    assert r.status_code == 200
    logged = api.post(f"{base}/drift", params={"days": 1}, headers=headers)
    assert logged.status_code == 200, logged.text
    report = logged.json()
    assert report["source"] == "log" and report["n_current"] == 90 and report["version"] == 1
    assert report["verdict"] == "ok", report["reasons"]
    assert set(report["columns"]) == {"title", "store", "price"}
    assert report["window"] == {"days": 1.0, "limit": 100_000}

    scaled = working.assign(price=working["price"] * 10 + 100)
    r = api.post(f"{base}/drift/file", files=csv(scaled), headers=headers)
    shifted = r.json()
    assert shifted["verdict"] == "drift" and shifted["source"] == "file"
    assert shifted["reasons"][0].startswith("price (numeric): distribution shifted")
    assert shifted["columns"]["price"]["verdict"] == "drift"

    listed = api.get(f"{base}/drift", headers=headers).json()
    assert [x["id"] for x in listed] == [shifted["id"], report["id"]]
    assert listed[0]["signals"]["price:distribution"] > 0.25
    one = api.get(f"{base}/drift/{report['id']}", headers=headers).json()
    assert one == report
    page = api.get(f"{base}/drift/{shifted['id']}/html", headers=headers)
    assert page.headers["content-type"].startswith("text/html")
    assert "<span class='verdict drift'>drift</span>" in page.text and "price" in page.text
    assert "<script" not in page.text

    # bad input: refused, nothing stored
    foreign = pd.DataFrame({"other": range(50)})
    assert_error(api.post(f"{base}/drift/file", files=csv(foreign), headers=headers), 422)
    few = working.head(5)
    assert (
        "at least 30"
        in assert_error(api.post(f"{base}/drift/file", files=csv(few), headers=headers), 422)[
            "message"
        ]
    )
    assert len(api.get(f"{base}/drift", headers=headers).json()) == 2
    assert_error(api.get(f"{base}/drift/999999", headers=headers), 404)
    other, _ = new_member(api)
    assert_error(api.post(f"{base}/drift", headers=other), 404)
    assert_error(api.get(f"{base}/drift", headers=other), 404)


def test_retrain_jobs_are_journalled_and_bad_files_refused(
    api: TestClient, model: dict[str, Any], toy: pd.DataFrame
) -> None:
    headers, name = model["headers"], model["name"]
    base = f"/api/v1/monitor/{name}"
    unlabelled = toy.tail(90).drop(columns="label")
    err = assert_error(api.post(f"{base}/retrain", files=csv(unlabelled), headers=headers), 422)
    assert "'label'" in err["message"]
    assert api.get(f"{base}/journal", headers=headers).json() == []

    r = api.post(
        f"{base}/retrain", files=csv(toy.tail(90)), data={"reason": "new rows"}, headers=headers
    )
    assert r.status_code == 202, r.text
    job = wait_job(api, headers, r.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job
    (entry,) = api.get(f"{base}/journal", headers=headers).json()
    assert job["result"]["id"] == entry["id"] and entry["status"] in {"promoted", "kept"}
    assert entry["trigger"] == "manual" and entry["reason"] == "new rows"
    assert entry["data"]["new_rows"] == 90 and entry["data"]["source"] == "file"
    assert entry["data"]["name"] == "rows.csv"
    ev = entry["evaluation"]
    assert ev["champion"]["low"] <= ev["champion"]["score"] <= ev["champion"]["high"]
    assert set(entry["reports"]) == {"champion", "challenger"}
    versions = api.get("/api/v1/models", headers=headers).json()
    mine = next(m for m in versions if m["name"] == name)
    assert len(mine["versions"]) == 2  # the challenger is registered either way


def test_a_policy_retrains_on_new_labels(api: TestClient, model: dict[str, Any]) -> None:
    headers, name = model["headers"], model["name"]
    base = f"/api/v1/monitor/{name}"
    assert_error(api.get(f"{base}/policy", headers=headers), 404)
    assert_error(api.put(f"{base}/policy", json={"new_labels": 5}, headers=headers), 422)
    assert_error(api.put(f"{base}/policy", json={"every": 1}, headers=headers), 422)
    body = {"new_labels": 20, "min_hours_between": 0}
    put = api.put(f"{base}/policy", json=body, headers=headers)
    assert put.status_code == 200 and put.json()["policy"]["new_labels"] == 20
    svc = api.app.state.services
    assert run_policies(svc) == []  # no labels yet

    rng = np.random.default_rng(0)
    words = {
        "sport": "football goal team",
        "cooking": "pasta garlic oven",
        "finance": "bank loan money",
    }
    labels = list(words)
    records = [
        {"title": words[labels[i % 3]], "store": "eu", "price": float(i % 9)} for i in range(40)
    ]
    r = api.post("/api/v1/predict", json={"model": name, "records": records}, headers=headers)
    rid = r.json()["request_id"]
    items = [
        {
            "request_id": rid,
            "position": i,
            "label": labels[i % 3] if rng.random() < 0.9 else labels[(i + 1) % 3],
        }
        for i in range(40)
    ]
    assert api.post(f"{base}/feedback", json={"items": items}, headers=headers).status_code == 200
    with svc.db.session() as s:  # the check interval has not passed: make it due now
        from sqlalchemy import update

        from taxonomist.store import MonitorPolicy

        s.execute(update(MonitorPolicy).values(last_checked=None))
    (queued,) = run_policies(svc)
    assert run_policies(svc) == []  # claimed: not checked again within the interval
    job = wait_job(api, headers, queued.id, {"succeeded", "failed"})
    assert job["state"] == "succeeded", job
    newest = api.get(f"{base}/journal", headers=headers).json()[0]
    assert newest["trigger"] == "labels" and "40 new labels" in newest["reason"]
    assert newest["data"]["source"] == "feedback" and newest["data"]["new_rows"] == 40
    assert api.delete(f"{base}/policy", headers=headers).status_code == 204
    assert_error(api.delete(f"{base}/policy", headers=headers), 404)
