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

from tests.conftest import ADMIN_PASSWORD

EXAMPLES = 15  # generated requests per operation
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
]


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_mb": 5}


def test_api_conforms_to_its_schema(live_server: str) -> None:
    from hypothesis import given

    url = live_server
    r = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
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
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 25 and calls >= 10 * operations
    assert not failures, "\n\n".join(failures)
