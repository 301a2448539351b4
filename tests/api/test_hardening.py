"""Attacks and mistakes the service must survive (issue 12): foreign names in file names and
cells, malformed files, other tenants' names, stale tokens, server paths in messages."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taxonomist.api.routers.predict import attachment
from tests.conftest import (
    admin_headers,
    assert_error,
    login_headers,
    new_member,
    upload_table,
    wait_job,
)


@pytest.fixture(scope="module")
def member_model(api: TestClient, toy: pd.DataFrame) -> dict[str, Any]:
    headers, user_id = new_member(api)
    dataset = upload_table(api, headers, toy, target="label").json()["dataset"]["id"]
    name = f"hard-{uuid.uuid4().hex[:6]}"
    body = {"dataset_id": dataset, "model_name": name, "trials": 1, "families": ["logreg"]}
    job = api.post("/api/v1/jobs", json=body, headers=headers).json()
    assert wait_job(api, headers, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    return {"headers": headers, "user_id": user_id, "name": name, "dataset": dataset}


def test_any_file_name_comes_back_in_the_download_header(
    api: TestClient, member_model: dict[str, Any], toy: pd.DataFrame
) -> None:
    name = "прогноз март.csv"
    r = api.post(
        "/api/v1/predict/file",
        files={"file": (name, toy.head(5).to_csv(index=False).encode())},
        data={"model": member_model["name"]},
        headers=member_model["headers"],
    )
    assert r.status_code == 200, r.text
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    fallback = disposition.split('filename="')[1].split('"')[0]
    assert fallback.isascii() and '"' not in fallback and fallback.endswith(".predictions.csv")
    encoded = quote("прогноз март.predictions.csv", safe="")
    assert f"filename*=UTF-8''{encoded}" in disposition
    # quotes and backslashes cannot end the header's quoted string
    quoted = attachment('a "b" \\c.csv')
    assert quoted.startswith('attachment; filename="a _b_ _c.csv"; filename*=UTF-8')


def test_cells_that_a_spreadsheet_would_run_are_defused(
    api: TestClient, member_model: dict[str, Any]
) -> None:
    rows = pd.DataFrame(
        {
            "title": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2", "pasta garlic"],
            "store": ["eu"] * 5,
            "price": [1.0, -2.0, 3.0, 4.0, 5.0],
        }
    )
    r = api.post(
        "/api/v1/predict/file",
        files={"file": ("cells.csv", rows.to_csv(index=False).encode())},
        data={"model": member_model["name"]},
        headers=member_model["headers"],
    )
    out = pd.read_csv(io.StringIO(r.text))
    assert out["title"].tolist() == [
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'@SUM(A1)",
        "'-2",
        "pasta garlic",
    ]
    assert out["price"].tolist() == [1.0, -2.0, 3.0, 4.0, 5.0]  # numbers stay numbers


@pytest.mark.parametrize(
    "content",
    [b'{"data": [["x"]]}', b'{"data": [{"paragraphs": [{"context": 7, "qas": "no"}]}]}'],
)
def test_a_malformed_squad_file_is_a_clear_400(api: TestClient, content: bytes) -> None:
    r = api.post(
        "/api/v1/retrieval/datasets",
        files={"file": ("bad.json", io.BytesIO(content), "application/json")},
        headers=admin_headers(api),
    )
    err = assert_error(r, 400)
    assert "bad.json" in err["message"] and "context" in err["message"]


def test_errors_do_not_show_server_paths(api: TestClient, api_settings) -> None:
    r = api.post(
        "/api/v1/datasets",
        files={"file": ("broken.parquet", b"not parquet at all")},
        headers=admin_headers(api),
    )
    assert r.status_code in (400, 422), r.text
    text = json.dumps(r.json())
    assert str(api_settings.home) not in text and "/tmp/" not in text, text


def test_a_members_not_found_names_only_their_models(
    api: TestClient, member_model: dict[str, Any], toy: pd.DataFrame
) -> None:
    other, _ = new_member(api)
    ds = upload_table(api, other, toy, target="label").json()["dataset"]["id"]
    secret = f"secret-{uuid.uuid4().hex[:6]}"
    body = {"dataset_id": ds, "model_name": secret, "trials": 1, "families": ["complement_nb"]}
    job = api.post("/api/v1/jobs", json=body, headers=other).json()
    assert wait_job(api, other, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    record = {"title": "pasta"}
    mine = member_model["name"]
    r = api.post(
        "/api/v1/predict",
        json={"model": f"{mine}/99", "records": record},
        headers=member_model["headers"],
    )
    err = assert_error(r, 404)
    assert secret not in json.dumps(err) and err["details"]["models"] == [mine]
    # an admin still sees every name
    r = api.post(
        "/api/v1/predict",
        json={"model": f"{mine}/99", "records": record},
        headers=admin_headers(api),
    )
    assert secret in assert_error(r, 404)["details"]["models"]


def test_password_changes_and_resets_end_other_sessions(api: TestClient) -> None:
    admin = admin_headers(api)
    username, password = f"pw-{uuid.uuid4().hex[:6]}", "first-password"
    user = api.post(
        "/api/v1/users", json={"username": username, "password": password}, headers=admin
    ).json()
    here = login_headers(api, username, password)
    elsewhere = login_headers(api, username, password)
    wrong = api.post(
        "/api/v1/auth/password",
        json={"old_password": "nope", "new_password": "second-password"},
        headers=here,
    )
    assert_error(wrong, 403)
    assert api.get("/api/v1/auth/me", headers=elsewhere).status_code == 200  # nothing changed
    r = api.post(
        "/api/v1/auth/password",
        json={"old_password": password, "new_password": "second-password"},
        headers=here,
    )
    assert r.status_code == 200 and r.json() == {"tokens_revoked": 1}
    assert api.get("/api/v1/auth/me", headers=here).status_code == 200  # this one stays
    assert_error(api.get("/api/v1/auth/me", headers=elsewhere), 401)
    assert_error(
        api.post("/api/v1/auth/login", json={"username": username, "password": password}), 401
    )
    # an admin's reset ends every session of the user
    api.patch(f"/api/v1/users/{user['id']}", json={"password": "third-password"}, headers=admin)
    assert_error(api.get("/api/v1/auth/me", headers=here), 401)
    assert login_headers(api, username, "third-password")
    assert api.get("/api/v1/auth/me", headers=admin).status_code == 200  # admin unaffected


def test_a_member_cannot_claim_a_model_registered_without_an_owner(
    api: TestClient, api_settings, member_model: dict[str, Any], toy: pd.DataFrame
) -> None:
    from taxonomist.models.train import train
    from taxonomist.registry import Registry

    name = f"cli-{uuid.uuid4().hex[:6]}"  # registered on the service's home by the CLI
    result = train(toy, target="label", trials=1, families=["complement_nb"], settings=api_settings)
    result.register(Registry(api_settings), name)
    body = {"dataset_id": member_model["dataset"], "model_name": name, "trials": 1}
    err = assert_error(api.post("/api/v1/jobs", json=body, headers=member_model["headers"]), 409)
    assert "is taken" in err["message"]
    assert_error(
        api.post(
            "/api/v1/predict",
            json={"model": name, "records": {"title": "x"}},
            headers=member_model["headers"],
        ),
        404,
    )


def test_repeated_failed_logins_back_off_and_are_audited(api: TestClient) -> None:
    svc = api.app.state.services
    admin = admin_headers(api)
    username = f"guess-{uuid.uuid4().hex[:6]}"
    api.post(
        "/api/v1/users", json={"username": username, "password": "right-password"}, headers=admin
    )

    def attempt(password: str) -> Any:
        return api.post("/api/v1/auth/login", json={"username": username, "password": password})

    try:
        for i in range(6):
            assert_error(attempt(f"guess {i}"), 401)
        r = attempt("right-password")  # the right one too: otherwise guessing goes on
        err = assert_error(r, 429, "too_many_requests")
        assert 1 <= int(r.headers["Retry-After"]) <= 2 and "try again in" in err["message"]
        from sqlalchemy import select

        from taxonomist.store import AuditEntry

        with svc.db.session() as s:
            failed = s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "login_failed", AuditEntry.resource_id == username
                )
            ).all()
        assert len(failed) == 6 and failed[0].details["address"] == "testclient"
        # the address backs off too, whatever username it tries
        for i in range(20):
            api.post("/api/v1/auth/login", json={"username": f"nobody-{i}", "password": "x" * 8})
        assert_error(attempt("right-password"), 429)
    finally:
        svc.logins.clear()  # the module's other tests log in from the same address
    assert attempt("right-password").status_code == 200
