"""Decompression bombs and files too big to parse, through the API (issue 12, item 9): each is
a 413 that names the limit to raise, nothing is stored, and the service goes on answering
(probes, listings, the next upload), also after a parse worker ran out of memory."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taxonomist.config import Settings
from tests.conftest import assert_error, new_member, upload_table
from tests.data.test_load_limits import MB, gzip_bomb, parquet_bomb

LONG_ROW = b"buy cheap watches now " * 13 + b",what is it?\n"


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    # Small caps, so each bomb is refused in well under a second; 600 MB of worker memory is
    # plenty for the toy tables and far from enough for the JSON of test_out_of_memory.
    return {
        "max_decompressed_mb": 30,
        "max_table_rows": 200_000,
        "max_table_columns": 50,
        "parse_memory_mb": 600,
        "parse_timeout": 60,
    }


def post_file(
    api: TestClient, headers: dict[str, str], path: Path, route: str = "/api/v1/datasets"
) -> Any:
    with path.open("rb") as fh:
        return api.post(route, files={"file": (path.name, fh)}, headers=headers)


def stored_files(settings: Settings) -> set[str]:
    folder = settings.datasets_dir
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def assert_refused_and_service_fine(
    api: TestClient,
    settings: Settings,
    headers: dict[str, str],
    path: Path,
    setting: str,
    route: str = "/api/v1/datasets",
) -> str:
    """Upload ``path``: a 413 naming ``setting``; nothing stored; the service answers."""
    listing = route.removesuffix("/datasets") + "/datasets"
    before, files = api.get(listing, headers=headers).json(), stored_files(settings)
    err = assert_error(post_file(api, headers, path, route), 413, "payload_too_large")
    assert err["details"]["setting"] == setting, err
    assert f"raise {setting}" in err["message"]
    assert str(settings.home) not in err["message"]  # the user's file name, not the server's
    assert api.get(listing, headers=headers).json() == before
    assert stored_files(settings) == files
    assert api.get("/health").json() == {"status": "ok"}
    return str(err["message"])


@pytest.fixture(scope="module")
def member(api: TestClient) -> dict[str, str]:
    return new_member(api)[0]


def test_gzip_bomb_upload_is_a_413(
    api: TestClient, api_settings: Settings, member: dict[str, str], tmp_path: Path
) -> None:
    # Rows of 300 bytes: the 30 MB cap comes before the 200,000-row one.
    bomb = gzip_bomb(tmp_path / "orders.csv.gz", b"title,label\n", LONG_ROW, 300 * MB)
    message = assert_refused_and_service_fine(
        api, api_settings, member, bomb, "TAXONOMIST_MAX_DECOMPRESSED_MB"
    )
    assert "'orders.csv.gz' holds more than 30.0 MB of data when decompressed" in message


def test_parquet_bomb_upload_is_a_413(
    api: TestClient, api_settings: Settings, member: dict[str, str], tmp_path: Path
) -> None:
    bomb = parquet_bomb(tmp_path / "orders.parquet", 100_000, "x" * 1000, store_schema=False)
    message = assert_refused_and_service_fine(
        api, api_settings, member, bomb, "TAXONOMIST_MAX_DECOMPRESSED_MB"
    )
    assert "'orders.parquet' holds more than 30.0 MB of data when decoded" in message


def test_too_many_rows_or_columns_are_a_413(
    api: TestClient, api_settings: Settings, member: dict[str, str], tmp_path: Path
) -> None:
    wide = tmp_path / "wide.csv"
    pd.DataFrame({f"c{i}": [1, 2] for i in range(60)}).to_csv(wide, index=False)
    message = assert_refused_and_service_fine(
        api, api_settings, member, wide, "TAXONOMIST_MAX_TABLE_COLUMNS"
    )
    assert "'wide.csv' has 60 columns; the limit is 50" in message
    long = tmp_path / "long.jsonl.gz"
    long.write_bytes(gzip.compress(b'{"title": "a few words", "label": "x"}\n' * 250_000))
    message = assert_refused_and_service_fine(
        api, api_settings, member, long, "TAXONOMIST_MAX_TABLE_ROWS"
    )
    assert "'long.jsonl.gz' has 250,000 data rows; the limit is 200,000" in message


def test_a_qa_upload_is_capped_too(
    api: TestClient, api_settings: Settings, member: dict[str, str], tmp_path: Path
) -> None:
    bomb = gzip_bomb(tmp_path / "qa.csv.gz", b"context,question\n", LONG_ROW, 300 * MB)
    assert_refused_and_service_fine(
        api,
        api_settings,
        member,
        bomb,
        "TAXONOMIST_MAX_DECOMPRESSED_MB",
        route="/api/v1/retrieval/datasets",
    )
    sample = tmp_path / "qa.csv"
    passages = [f"passage {i} about topic {i % 7}" for i in range(30)]
    questions = [f"what is passage {i} about?" for i in range(30)]
    pd.DataFrame({"context": passages, "question": questions}).to_csv(sample, index=False)
    r = post_file(api, member, sample, "/api/v1/retrieval/datasets")
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["kind"] == "qa"


def test_out_of_memory_is_a_413_and_the_next_upload_works(
    api: TestClient,
    api_settings: Settings,
    member: dict[str, str],
    toy: pd.DataFrame,
    tmp_path: Path,
) -> None:
    # 26 MB of JSON (under every cap) that json.load turns into 2 million dicts: > 600 MB.
    heavy = tmp_path / "heavy.json"
    heavy.write_text(json.dumps([{"title": 1}] * 2_000_000, separators=(",", ":")))
    assert heavy.stat().st_size < api_settings.max_decompressed_mb * MB
    message = assert_refused_and_service_fine(
        api, api_settings, member, heavy, "TAXONOMIST_PARSE_MEMORY_MB"
    )
    assert "more memory than a parse worker may use (600 MB" in message
    r = upload_table(api, member, toy, target="label")
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["n_rows"] == len(toy)


def test_a_normal_gzip_upload_is_stored(
    api: TestClient, member: dict[str, str], toy: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "toy.csv.gz"
    path.write_bytes(gzip.compress(toy.to_csv(index=False).encode()))
    r = post_file(api, member, path)
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["n_rows"] == len(toy)
