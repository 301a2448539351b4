"""Property-based tests of the whole API from its OpenAPI schema (schemathesis): generated
requests, valid and invalid, against a real uvicorn server, must never give a 5xx or a
response that breaks the schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_PASSWORD, small_squad

EXAMPLES = 20  # generated requests per operation
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_mb": 5}


def _headers(url: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def callers(live_server: str) -> dict[str, Any]:
    """The admin's and a member's headers; the member has no dataset, job or model, so every
    generated id and name is someone else's or nobody's to them. ``victim``: the user whose
    password and state the generated user changes hit (not the callers': a reset revokes
    their tokens)."""
    admin = _headers(live_server, "admin", ADMIN_PASSWORD)
    ids = {}
    for name in ("fuzz-member", "fuzz-victim"):
        r = httpx.post(
            f"{live_server}/api/v1/users",
            json={"username": name, "password": "fuzz-pass-1", "role": "member"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    # something of the admin's for the member's requests to miss
    httpx.post(
        f"{live_server}/api/v1/retrieval/datasets",
        files={"file": ("squad.json", small_squad(10))},
        headers=admin,
    )
    return {
        "admin": admin,
        "member": _headers(live_server, "fuzz-member", "fuzz-pass-1"),
        "victim": ids["fuzz-victim"],
    }


def _spare_token(url: str, headers: dict[str, str]) -> int:
    """A token of the caller's for the generated revocations to hit (not the one in use)."""
    r = httpx.post(f"{url}/api/v1/auth/tokens", json={"name": "spare"}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.mark.parametrize("role", ["admin", "member"])
def test_api_conforms_to_its_schema(live_server: str, callers: dict[str, Any], role: str) -> None:
    from hypothesis import given

    url = live_server
    headers = callers[role]
    spare = _spare_token(url, headers)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/auth/logout":
            continue  # would revoke the token the other cases use (tested in test_api)
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            if case.path_parameters and "user_id" in case.path_parameters:
                case.path_parameters["user_id"] = callers["victim"]
            if case.path_parameters and "token_id" in case.path_parameters:
                case.path_parameters["token_id"] = spare
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 25 and calls >= 10 * operations
    assert not failures, "\n\n".join(failures)


def test_any_file_name_is_stored_or_refused_cleanly(
    live_server: str, callers: dict[str, Any]
) -> None:
    """Uploads under generated file names (any Unicode, quotes, slashes, control characters):
    a 201 or a 4xx, never a 5xx, and a stored dataset shows no server path."""
    from hypothesis import given
    from hypothesis import strategies as st

    body = b"text,label\nred river,a\nblue sea,b\ngreen hill,a\nsnow peak,b\n"

    @given(name=st.text(min_size=1, max_size=60))
    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    def upload(name: str) -> None:
        r = httpx.post(
            f"{live_server}/api/v1/datasets",
            files={"file": (name + ".csv", body)},
            headers=callers["member"],
            timeout=60,
        )
        assert r.status_code < 500, (name, r.text)
        if r.status_code == 201:
            stored = r.json()["dataset"]
            assert "/tmp" not in str(stored) and "/datasets/" not in stored["name"]
            httpx.delete(f"{live_server}/api/v1/datasets/{stored['id']}", headers=callers["member"])

    upload()
