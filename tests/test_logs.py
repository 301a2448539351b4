"""The service's logs: JSON lines that carry the id each response returns, rotated files,
audit entries (a promotion through the API among them) and the UI's messages to the user."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, cast

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import ValidationError
from streamlit.testing.v1 import AppTest

from taxonomist.config import Settings
from taxonomist.logs import UI_LOG, audit, configure_logging, flush, reset_logging
from tests.conftest import free_port, new_member, upload_table, wait_http, wait_job

HERE = "taxonomist.tests.logs"
log = logging.getLogger(HERE)


def entries(path: Path, logger: str | None = None) -> list[dict[str, Any]]:
    """Every line of a log file, parsed (a line that is not one JSON object fails the test);
    only ``logger``'s when given (the module's app logs from its own threads meanwhile)."""
    flush()  # lines are written by a listener thread
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in parsed)
    return [e for e in parsed if logger is None or e["logger"] == logger]


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if hasattr(h, "_taxonomist_config")]


@pytest.fixture
def service_log(api_settings: Settings) -> Iterator[Path]:
    """The module's app's log file, configured as ``taxonomist serve`` does (no stderr)."""
    path = configure_logging(api_settings, stream=False)
    yield path
    reset_logging()


@pytest.fixture
def settings_in(tmp_path: Path) -> Iterator[Any]:
    """A factory of settings on a fresh home; the handlers they configure go afterwards."""
    yield lambda **kw: Settings(home=tmp_path / "home", **kw)
    reset_logging()


# -- request ids -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def routes(api: TestClient) -> TestClient:
    """The module's app with three routes that log: one async, one sync (served on a worker
    thread) and one that fails."""

    async def async_route() -> dict[str, str]:
        log.info("async route", extra={"step": 1})
        return {"ok": "async"}

    def sync_route() -> dict[str, str]:
        log.warning("sync route on a worker thread")
        return {"ok": "sync"}

    def failing_route() -> None:
        raise RuntimeError("boom in a route")

    def own_header_route() -> JSONResponse:
        return JSONResponse({}, headers={"X-Request-ID": "set-by-the-route"})

    app = cast(FastAPI, api.app)
    app.add_api_route("/test-logs/async", async_route)
    app.add_api_route("/test-logs/sync", sync_route)
    app.add_api_route("/test-logs/fail", failing_route)
    app.add_api_route("/test-logs/own", own_header_route)
    return api


def test_every_line_written_for_a_request_carries_the_id_it_returns(
    routes: TestClient, service_log: Path
) -> None:
    a = routes.get("/test-logs/async", headers={"X-Request-ID": "trace-async-1"})
    s = routes.get("/test-logs/sync", headers={"X-Request-ID": "trace-sync-1"})
    assert a.status_code == s.status_code == 200
    assert a.headers["X-Request-ID"] == "trace-async-1"
    assert s.headers["X-Request-ID"] == "trace-sync-1"
    by_message = {e["message"]: e for e in entries(service_log)}
    first = by_message["async route"]
    assert first["request_id"] == "trace-async-1" and first["step"] == 1
    assert first["level"] == "INFO" and first["logger"] == "taxonomist.tests.logs"
    assert first["ts"].endswith("+00:00") and "T" in first["ts"]
    second = by_message["sync route on a worker thread"]
    assert second["request_id"] == "trace-sync-1" and second["level"] == "WARNING"


def test_a_request_without_a_usable_id_gets_a_new_one_and_logs_under_it(
    routes: TestClient, service_log: Path
) -> None:
    plain = routes.get("/test-logs/async")
    bad = routes.get("/test-logs/async", headers={"X-Request-ID": "not a valid id!"})
    ids = [plain.headers["X-Request-ID"], bad.headers["X-Request-ID"]]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]
    logged = [e["request_id"] for e in entries(service_log) if e["message"] == "async route"]
    assert logged[-2:] == ids


def test_any_response_carries_the_id_and_a_route_setting_it_is_not_doubled(
    routes: TestClient,
) -> None:
    missing = routes.get("/no-such-thing", headers={"X-Request-ID": "trace-404"})
    assert missing.status_code == 404
    assert missing.headers.get_list("X-Request-ID") == ["trace-404"]
    # refused by the request guard, before routing: the id is there too
    anonymous = routes.get("/api/v1/no-such-thing", headers={"X-Request-ID": "trace-401"})
    assert anonymous.status_code == 401
    assert anonymous.headers.get_list("X-Request-ID") == ["trace-401"]
    own = routes.get("/test-logs/own", headers={"X-Request-ID": "trace-own"})
    assert own.headers.get_list("X-Request-ID") == ["set-by-the-route"]


def test_an_unhandled_error_is_logged_under_the_id_the_500_names(
    routes: TestClient, service_log: Path
) -> None:
    r = routes.get("/test-logs/fail", headers={"X-Request-ID": "trace-boom"})
    assert r.status_code == 500 and r.headers["X-Request-ID"] == "trace-boom"
    error = r.json()["error"]
    assert error["details"] == {"request_id": "trace-boom"} and "trace-boom" in error["message"]
    (line,) = [e for e in entries(service_log) if e.get("request_id") == "trace-boom"]
    assert line["level"] == "ERROR" and line["logger"] == "taxonomist.api.errors"
    assert "RuntimeError: boom in a route" in line["exc"]


def test_taxonomist_serve_logs_each_request_with_its_id_to_stderr_and_the_file(
    tmp_path: Path,
) -> None:
    """The command as deployed: uvicorn's own lines (the access lines among them) go through
    the same handlers, as JSON, with the request id."""
    home, port = tmp_path / "home", free_port()
    env = {**os.environ, "TAXONOMIST_HOME": str(home), "TAXONOMIST_ADMIN_PASSWORD": "pw-123456"}
    taxonomist = Path(sys.executable).parent / "taxonomist"
    with (tmp_path / "stderr").open("wb") as stderr:
        server = subprocess.Popen(
            [str(taxonomist), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", timeout=90)
            r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"X-Request-ID": "served-1"})
            assert r.headers["X-Request-ID"] == "served-1"
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    logged = entries(home / "logs" / "taxonomist.log")  # every line JSON
    # stderr is the process's: a library may print there too
    lines = (tmp_path / "stderr").read_text().splitlines()
    shown = [json.loads(line) for line in lines if line.startswith("{")]
    for found in (logged, shown):
        access = [e for e in found if e["logger"] == "uvicorn.access"]
        assert [(a["request_id"], a["method"], a["path"], a["status"]) for a in access][-1:] == [
            ("served-1", "GET", "/health", 200)
        ]


# -- audit -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(api: TestClient, toy: pd.DataFrame) -> dict[str, Any]:
    """A member's model trained on the toy table (one logistic regression)."""
    headers, user_id = new_member(api)
    dataset = upload_table(api, headers, toy, target="label").json()["dataset"]["id"]
    name = f"audit-{uuid.uuid4().hex[:6]}"
    body = {"dataset_id": dataset, "model_name": name, "trials": 1, "families": ["logreg"]}
    job = api.post("/api/v1/jobs", json=body, headers=headers).json()
    assert wait_job(api, headers, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    me = api.get("/api/v1/auth/me", headers=headers).json()
    return {"headers": headers, "name": name, "username": me["username"], "user_id": user_id}


def test_a_promotion_through_the_api_writes_an_audit_line(
    api: TestClient, model: dict[str, Any], service_log: Path
) -> None:
    name = model["name"]
    r = api.put(
        f"/api/v1/models/{name}/aliases/staging",
        json={"version": 1},
        headers={**model["headers"], "X-Request-ID": "promote-1"},
    )
    assert r.status_code == 200, r.text
    (line,) = [e for e in entries(service_log) if e.get("action") == "set_alias"]
    assert line == {
        "ts": line["ts"],
        "level": "INFO",
        "logger": "taxonomist.audit",
        "message": line["message"],
        "request_id": "promote-1",
        "audit": True,
        "action": "set_alias",
        "user": None,
        "user_id": model["user_id"],
        "resource": "model",
        "resource_id": name,
        "details": {"name": name, "version": 1, "alias": "staging"},
    }
    assert line["message"].startswith(f"set_alias: user_id={model['user_id']} resource=model")


def test_audit_writes_its_fields_as_keys_even_those_named_like_record_attributes(
    settings_in: Any,
) -> None:
    path = configure_logging(settings_in(), stream=False)
    audit("retrain", user="alice", name="apps", module="x", reason=Path("/a/b"), level="high")
    audit("policy_change")
    first, second = entries(path, "taxonomist.audit")
    assert first["audit"] is True and first["action"] == "retrain" and first["user"] == "alice"
    assert (first["name"], first["module"], first["reason"]) == ("apps", "x", "/a/b")
    assert first["level"] == "INFO"  # a field never replaces a core key
    assert "request_id" not in first  # outside a request
    assert second["message"] == "policy_change" and second["user"] is None


# -- files ---------------------------------------------------------------------------------------
def test_files_rotate_at_the_size_limit_and_keep_the_backups_asked_for(
    settings_in: Any,
) -> None:
    settings = settings_in(log_max_mb=0.001, log_backups=2)  # 1000 bytes
    path = configure_logging(settings, stream=False)
    for i in range(300):
        log.info("line %d of the rotation test", i)
    flush()
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["taxonomist.log", "taxonomist.log.1", "taxonomist.log.2"]
    longest = max(len(line) + 1 for f in files for line in f.read_text().splitlines())
    assert all(f.stat().st_size <= 1000 + longest for f in files)
    assert entries(path, HERE)[-1]["message"] == "line 299 of the rotation test"
    numbers = [int(e["message"].split()[1]) for f in reversed(files) for e in entries(f, HERE)]
    assert numbers == list(range(numbers[0], 300))  # the newest lines, in order, none lost


def test_with_no_backups_a_full_file_starts_over(settings_in: Any) -> None:
    path = configure_logging(settings_in(log_max_mb=0.001, log_backups=0), stream=False)
    for i in range(300):
        log.info("line %d", i)
    flush()
    assert [f.name for f in path.parent.iterdir()] == ["taxonomist.log"]
    assert path.stat().st_size <= 1100 and entries(path, HERE)[-1]["message"] == "line 299"


def test_configuring_twice_keeps_one_set_of_handlers_and_new_settings_replace_it(
    settings_in: Any, tmp_path: Path
) -> None:
    settings = settings_in()
    first = configure_logging(settings, stream=False)
    assert (
        configure_logging(settings, stream=False)
        == first
        == settings.home / "logs" / ("taxonomist.log")
    )
    assert len(ours()) == 1
    other = configure_logging(settings_in(log_dir=tmp_path / "elsewhere"), stream=True)
    assert other == tmp_path / "elsewhere" / "taxonomist.log"
    (queued,) = ours()
    assert sorted(type(h).__name__ for h in queued.listener.handlers) == [
        "StreamHandler",
        "_RotatingFile",
    ]
    log.warning("after the change")
    assert [e["message"] for e in entries(other, HERE)] == ["after the change"]
    assert entries(first, HERE) == []


def test_text_format_and_level_come_from_the_settings(settings_in: Any) -> None:
    path = configure_logging(settings_in(log_format="text", log_level="warning"), stream=False)
    log.info("not written")
    log.warning("written", extra={"model": "apps"})
    flush()
    (line,) = [line for line in path.read_text().splitlines() if HERE in line]
    assert line.endswith(f' WARNING {HERE} written model="apps"')


def test_log_settings_are_checked() -> None:
    assert Settings(home=Path("/h")).logs_dir == Path("/h/logs")
    with pytest.raises(ValidationError, match="must be one of DEBUG, INFO"):
        Settings(log_level="loud")
    with pytest.raises(ValidationError):
        Settings(log_max_mb=0)
    with pytest.raises(ValidationError):
        Settings(log_format="xml")


# -- the UI ------------------------------------------------------------------------------------
def _page_with_messages() -> None:  # an AppTest script: runs in Streamlit, imports its own
    from taxonomist.ui.common import notify

    notify("error", "Model 'x' not found.")
    notify("success", "Saved 2 description(s).")


@pytest.fixture
def app_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest leaves its script as sys.modules["__main__"], which the processes that
    multiprocessing spawns later (Dask's workers) would run: put it back afterwards."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.mark.usefixtures("app_test")
def test_the_ui_logs_the_messages_it_shows_with_the_user(settings_in: Any) -> None:
    path = configure_logging(settings_in(), stream=False)
    at = AppTest.from_function(_page_with_messages)
    at.session_state["me"] = {"username": "carol", "role": "member"}
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Model 'x' not found."]
    assert [s.value for s in at.success] == ["Saved 2 description(s)."]
    shown = [e for e in entries(path) if e["logger"] == "taxonomist.ui"]
    assert [(e["level"], e["ui_message"], e["user"], e["message"]) for e in shown] == [
        ("ERROR", "error", "carol", "Model 'x' not found."),
        ("INFO", "success", "carol", "Saved 2 description(s)."),
    ]


@pytest.mark.usefixtures("app_test")
def test_the_ui_process_logs_to_its_own_file(home: Path) -> None:
    from taxonomist.ui import APP

    try:
        at = AppTest.from_file(str(APP), default_timeout=30).run()
        assert not at.exception
        files = [
            Path(h.baseFilename)
            for queued in ours()
            for h in queued.listener.handlers
            if isinstance(h, RotatingFileHandler)
        ]
        assert files == [(home / "logs" / UI_LOG).resolve()]
    finally:
        reset_logging()
