"""The prediction log over HTTP: every prediction logged before its response, paged by its
owner, kept after ``kill -9`` of the service, and off with TAXONOMIST_PREDICTION_LOG=off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taxonomist.config import Settings
from taxonomist.monitor.log import read_log
from taxonomist.store import Database
from tests.conftest import (
    ADMIN_PASSWORD,
    api_client,
    assert_error,
    free_port,
    new_member,
    upload_table,
    wait_http,
    wait_job,
)

RECORD = {"title": "pasta sauce with garlic", "store": "eu", "price": 3.0}
PER_REQUEST = 200


@pytest.fixture(scope="module")
def model(api: TestClient, toy: pd.DataFrame) -> dict[str, Any]:
    """A member's model trained on the toy table."""
    headers, user_id = new_member(api)
    dataset = upload_table(api, headers, toy, target="label").json()["dataset"]["id"]
    name = f"log-{uuid.uuid4().hex[:6]}"
    body = {"dataset_id": dataset, "model_name": name, "trials": 1, "families": ["logreg"]}
    job = api.post("/api/v1/jobs", json=body, headers=headers).json()
    assert wait_job(api, headers, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    return {"headers": headers, "user_id": user_id, "name": name}


def test_every_prediction_is_logged_and_paged_by_its_owner(
    api: TestClient, model: dict[str, Any], toy: pd.DataFrame
) -> None:
    headers, name = model["headers"], model["name"]
    one = api.post(
        "/api/v1/predict",
        json={"model": name, "records": RECORD},
        headers={**headers, "X-Request-ID": "my-request-1"},
    )
    assert one.status_code == 200 and one.json()["request_id"] == "my-request-1"
    assert one.headers["X-Request-ID"] == "my-request-1"
    batch = api.post(
        "/api/v1/predict",
        json={"model": name, "records": [RECORD, {"title": "bank loan"}]},
        headers={**headers, "X-Taxonomist-Source": "ui"},
    )
    file = api.post(
        "/api/v1/predict/file",
        files={"file": ("rows.csv", toy.head(25).to_csv(index=False).encode())},
        data={"model": name},
        headers=headers,
    )
    assert file.status_code == 200
    page = api.get(f"/api/v1/monitor/{name}/predictions", headers=headers).json()
    assert page["count"] == 28 and page["next_before_id"] is None
    newest, oldest = page["data"][0], page["data"][-1]
    assert newest["request_id"] == file.headers["X-Request-ID"] and newest["position"] == 24
    assert oldest["request_id"] == "my-request-1" and oldest["record"] == RECORD
    assert oldest["label"] == one.json()["predictions"][0]["label"] == "cooking"
    probabilities = one.json()["predictions"][0]["probabilities"]
    assert oldest["top"] == {k: round(v, 6) for k, v in probabilities.items()}
    assert oldest["user_id"] == model["user_id"] and oldest["latency_ms"] > 0
    assert oldest["version"] == 1 and oldest["source"] == "api"
    sources = {p["request_id"]: p["source"] for p in page["data"]}
    assert sources[batch.json()["request_id"]] == "ui"
    # the CSV's label column is not a feature: only the features are logged
    assert set(newest["record"]) == {"title", "store", "price"}
    # pages of 10, newest first, no overlap
    seen: list[int] = []
    before = None
    while True:
        params = {"limit": 10, **({"before_id": before} if before else {})}
        part = api.get(f"/api/v1/monitor/{name}/predictions", params=params, headers=headers)
        seen += [p["id"] for p in part.json()["data"]]
        before = part.json()["next_before_id"]
        if before is None:
            break
    assert seen == [p["id"] for p in page["data"]]
    # another member sees none of it; bad parameters are 422
    other, _ = new_member(api)
    assert_error(api.get(f"/api/v1/monitor/{name}/predictions", headers=other), 404)
    bad = api.get(f"/api/v1/monitor/{name}/predictions", params={"limit": 0}, headers=headers)
    assert_error(bad, 422)


def test_the_log_can_be_turned_off(api_settings: Settings, model: dict[str, Any]) -> None:
    name = model["name"]
    before = len(read_log(Database(api_settings.database), name, limit=1000))
    with api_client(api_settings.model_copy(update={"prediction_log": False})) as client:
        login = client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        r = client.post("/api/v1/predict", json={"model": name, "records": RECORD}, headers=headers)
        assert r.status_code == 200, r.text
    assert len(read_log(Database(api_settings.database), name, limit=1000)) == before


@pytest.mark.slow
def test_no_acknowledged_prediction_is_lost_when_the_service_is_killed(
    toy: pd.DataFrame, tmp_path: Path
) -> None:
    """Eight clients predict while the service gets SIGKILL: every request that got its
    answer is in the log."""
    from taxonomist.models.train import train
    from taxonomist.registry import Registry

    settings = Settings(home=tmp_path / "home", admin_password=ADMIN_PASSWORD)
    result = train(toy, target="label", trials=1, families=["logreg"], settings=settings)
    result.register(Registry(settings), "killed")
    port = free_port()
    env = {
        **os.environ,
        "TAXONOMIST_HOME": str(settings.home),
        "TAXONOMIST_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    taxonomist = Path(sys.executable).parent / "taxonomist"
    server = subprocess.Popen(
        [str(taxonomist), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    try:
        wait_http(f"{url}/ready", timeout=90)
        token = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        stop = threading.Event()
        # Requests of many records keep the log's writer busy: were a response sent before
        # its rows were committed, the kill would catch some in the queue.
        body = {"model": "killed", "records": [RECORD] * PER_REQUEST}

        def client() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
                while not stop.is_set():
                    try:
                        r = http.post("/api/v1/predict", json=body)
                    except httpx.TransportError:
                        return  # the server is gone
                    if r.status_code == 200:
                        acknowledged.append(r.json()["request_id"])

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(4)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert len(acknowledged) > 20, len(acknowledged)
    db = Database(settings.database)
    logged = read_log(db, "killed", limit=10_000)
    while len(logged) % 10_000 == 0 and logged:
        more = read_log(db, "killed", limit=10_000, before_id=logged[-1]["id"])
        if not more:
            break
        logged += more
    counts = pd.Series([p["request_id"] for p in logged]).value_counts()
    missing = [rid for rid in acknowledged if counts.get(rid) != PER_REQUEST]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged requests lost"
    db.dispose()


def test_the_cli_logs_local_predictions(toy: pd.DataFrame, home: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    import taxonomist
    from taxonomist.cli import app

    taxonomist.train(toy, target="label", name="local", trials=1, families=["logreg"])
    data = tmp_path / "rows.csv"
    toy.head(7).to_csv(data, index=False)
    runner = CliRunner()
    assert runner.invoke(app, ["predict", "local", str(data), "--json"]).exit_code == 0
    out = runner.invoke(app, ["monitor", "log", "local", "--json", "--limit", "5"])
    assert out.exit_code == 0, out.output
    page = json.loads(out.stdout)
    assert page["count"] == 5 and page["next_before_id"] is not None
    assert {p["source"] for p in page["data"]} == {"cli"} and page["data"][0]["position"] == 6
    text = runner.invoke(app, ["monitor", "log", "local"])
    assert "Older: taxonomist monitor log local --before-id" not in text.output  # 7 < 20
    assert "cooking" in text.output or "sport" in text.output or "finance" in text.output
    empty = runner.invoke(app, ["monitor", "log", "nothing-yet"])
    assert "No logged prediction of nothing-yet yet" in empty.output
    # the true labels of the seven rows, from a file: quality equals the offline score
    rid = page["data"][0]["request_id"]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": rid, "position": range(7), "label": toy["label"].head(7)}).to_csv(
        labels, index=False
    )
    done = runner.invoke(app, ["monitor", "feedback", "local", str(labels), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["recorded"] == 7
    quality = json.loads(runner.invoke(app, ["monitor", "quality", "local", "--json"]).stdout)
    expected = taxonomist.load("local").predict(toy.head(7)) == toy["label"].head(7).to_numpy()
    assert quality["n"] == 7 and quality["accuracy"] == pytest.approx(expected.mean())
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"request_id": [rid], "label": ["astrology"]}).to_csv(wrong, index=False)
    refused = runner.invoke(app, ["monitor", "feedback", "local", str(wrong)])
    assert refused.exit_code == 2 and "never saw: astrology" in refused.output


def test_feedback_joins_the_log_and_scores_live_quality(
    api: TestClient, model: dict[str, Any]
) -> None:
    headers, name = model["headers"], model["name"]
    records = [
        {"title": "pasta garlic oven bake"},
        {"title": "bank loan stock money"},
        {"title": "football match goal team"},
        {"title": "recipe sauce pasta"},
    ]
    r = api.post("/api/v1/predict", json={"model": name, "records": records}, headers=headers)
    rid, labels = r.json()["request_id"], [p["label"] for p in r.json()["predictions"]]
    assert labels == ["cooking", "finance", "sport", "cooking"]

    def send(items: list[dict[str, Any]]) -> Any:
        return api.post(f"/api/v1/monitor/{name}/feedback", json={"items": items}, headers=headers)

    # all or nothing: one unknown prediction, or one label the model never saw, stores none
    err = assert_error(
        send(
            [
                {"request_id": rid, "position": 0, "label": "cooking"},
                {"request_id": "nope", "label": "x"},
            ]
        ),
        404,
    )
    assert "nope/0" in err["message"]
    err = assert_error(send([{"request_id": rid, "position": 1, "label": "gardening"}]), 422)
    assert "never saw: gardening" in err["message"]
    q = api.get(f"/api/v1/monitor/{name}/quality", headers=headers).json()
    assert q["n"] == 0 and q["accuracy"] is None
    # three right, one wrong (the second record was about finance, say the users: cooking)
    ok = send(
        [
            {"request_id": rid, "position": 0, "label": "cooking"},
            {"request_id": rid, "position": 1, "label": "cooking"},
            {"request_id": rid, "position": 2, "label": "sport"},
        ]
    )
    assert ok.json() == {"model": name, "recorded": 3}
    file = pd.DataFrame({"request_id": [rid], "position": [3], "label": ["cooking"]})
    r = api.post(
        f"/api/v1/monitor/{name}/feedback/file",
        files={"file": ("labels.csv", file.to_csv(index=False).encode())},
        headers=headers,
    )
    assert r.json()["recorded"] == 1, r.text
    q = api.get(f"/api/v1/monitor/{name}/quality", params={"days": 1}, headers=headers).json()
    assert q["n"] == 4 and q["accuracy"] == 0.75
    assert q["recall"] == {"cooking": 2 / 3, "sport": 1.0}
    assert q["f1_macro"] == pytest.approx((0.8 + 1.0) / 2)  # cooking: P 1, R 2/3; sport: 1
    logged = api.get(f"/api/v1/monitor/{name}/predictions", headers=headers).json()["data"]
    assert [p["feedback"] for p in logged[:4]] == ["cooking", "sport", "cooking", "cooking"]
    bad = api.post(
        f"/api/v1/monitor/{name}/feedback/file",
        files={"file": ("labels.csv", b"request,label\nx,y\n")},
        headers=headers,
    )
    assert "request_id" in assert_error(bad, 422)["message"]
