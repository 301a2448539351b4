"""`make demo` leaves the demo user something on every page: its table and its QA sample as
datasets, the demo model (trained on that table, owned by the user) and demo-squad."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from taxonomist.cli import app
from taxonomist.config import get_settings
from tests.conftest import api_client, login_headers, readme_blocks, run_block, shared


@pytest.mark.slow
def test_the_demo_stores_what_every_page_shows(home) -> None:
    pytest.importorskip("sentence_transformers")
    shared("squad/squad_v2_part1.json")
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--no-serve", "--time-budget", "15"])
    assert result.exit_code == 0, result.output
    assert "Built demo-squad: 646 passages" in result.output, result.output

    settings = get_settings().model_copy(update={"admin_password": "admin-password-1"})
    with api_client(settings) as client:
        headers = login_headers(client, "demo", "demo-password")
        tables = client.get("/api/v1/datasets", headers=headers).json()
        assert [(d["name"], d["target"], d["n_rows"]) for d in tables] == [
            ("apps.csv", "prime_genre", 2341)
        ]
        qa = client.get("/api/v1/retrieval/datasets", headers=headers).json()
        assert [(d["name"], d["kind"]) for d in qa] == [("squad_v2_part1.json", "qa")]
        models = client.get("/api/v1/models", headers=headers).json()
        assert [(m["name"], m["owner"]) for m in models] == [("demo-apps", "demo")]
        version = models[0]["versions"][0]
        assert version["dataset_id"] == tables[0]["id"]
        detail = client.get(
            f"/api/v1/models/demo-apps/versions/{version['version']}", headers=headers
        ).json()
        assert detail["config"]["target"] == "prime_genre" and "data" not in detail["config"]
        retrieval = client.get("/api/v1/retrieval/models", headers=headers).json()
        assert [(m["id"], m["owner"], m["dataset"]) for m in retrieval] == [
            ("demo-squad", "demo", "squad_v2_part1.json")
        ]
        # the README's record: two of the model's nine columns
        r = client.post(
            "/api/v1/predict",
            headers=headers,
            json={
                "model": "demo-apps",
                "records": {"track_name": "Chess Pro", "app_desc": "Play chess online"},
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["warnings"][0].startswith("7 column(s) the model was trained on")

    # the README's Python example, as written, on this home
    ((language, code),) = readme_blocks("The demo")
    env = {**os.environ, "TAXONOMIST_HOME": str(home)}
    printed = run_block(language, code, home.parent, env)
    assert "Games" in printed

    # a second demo reuses the stored datasets instead of adding copies
    again = runner.invoke(app, ["demo", "--no-serve", "--time-budget", "10"])
    assert again.exit_code == 0, again.output
    assert "Kept demo-squad: 646 passages" in again.output  # not indexed again
    with api_client(settings) as client:
        headers = login_headers(client, "demo", "demo-password")
        assert len(client.get("/api/v1/datasets", headers=headers).json()) == 1
        assert len(client.get("/api/v1/models", headers=headers).json()[0]["versions"]) == 2
