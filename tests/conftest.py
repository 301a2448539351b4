from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
DATA = Path(__file__).parent / "data"


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


def serve_in_thread(app: object) -> tuple[str, object, object]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; wait until ready."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return url, server, thread
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become ready")
