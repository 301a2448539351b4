"""``taxonomist serve --workers 2``: one port, two processes; /metrics adds both up
(Prometheus's multiprocess mode), whichever process answers the scrape."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_http

TOKEN = "scrape-token-for-the-test"


def _health_count(text: str) -> float:
    found = re.findall(
        r'^taxonomist_requests_total\{method="GET",route="/health",status="200"\} (\S+)$',
        text,
        re.M,
    )
    return sum(float(v) for v in found)


@pytest.mark.slow
def test_two_workers_metrics_add_up(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXONOMIST_")}
    env |= {
        "TAXONOMIST_HOME": str(tmp_path / "home"),
        "TAXONOMIST_ADMIN_PASSWORD": "workers-admin-pw",
        "TAXONOMIST_METRICS_TOKEN": TOKEN,
        "TAXONOMIST_POLICY_INTERVAL": "0",
        "TMPDIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("taxonomist")),
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ready", timeout=180)
        n = 200
        for _ in range(n):  # a new connection each: the kernel hands them to both processes
            assert httpx.get(f"{url}/health").status_code == 200
        (folder,) = tmp_path.glob("taxonomist-metrics-*")
        deadline = time.monotonic() + 30
        while len(list(folder.glob("counter_*.db"))) < 2:  # both processes counted requests
            assert time.monotonic() < deadline, sorted(p.name for p in folder.iterdir())
            httpx.get(f"{url}/health")
            n += 1
        auth = {"Authorization": f"Bearer {TOKEN}"}
        login = httpx.post(
            f"{url}/api/v1/auth/login",
            json={"username": "admin", "password": "workers-admin-pw"},
        )
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        refused = httpx.get(f"{url}/api/v1/retrieval/models", headers=admin)
        assert refused.status_code == 503, refused.text  # Qdrant Edge is one process's
        assert "TAXONOMIST_QDRANT_URL" in refused.json()["error"]["message"]
        for _ in range(6):  # every scrape, whoever answers it, sees all of them
            scrape = httpx.get(f"{url}/metrics", headers=auth)
            assert scrape.status_code == 200, scrape.text
            assert _health_count(scrape.text) == n, scrape.text[:2000]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
    assert not list(tmp_path.glob("taxonomist-metrics-*"))  # removed with the server
