"""A real Prometheus scrapes the API's /metrics and sees requests, statuses and predictions."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import ADMIN_PASSWORD, free_port


@pytest.fixture(scope="module")
def prometheus() -> str:
    """The prometheus binary; without one the test is skipped (fails where CI requires it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("TAXONOMIST_REQUIRE_PROMETHEUS"):
            pytest.fail("TAXONOMIST_REQUIRE_PROMETHEUS is set but prometheus is not installed")
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    return binary


# `prometheus` comes first so that a missing binary skips before the server starts.
def test_prometheus_scrapes_requests_and_predictions(
    prometheus: str, live_server: str, tmp_path: Path, toy: pd.DataFrame
) -> None:
    from taxonomist.client import Client

    url = live_server
    client = Client.login(url, "admin", ADMIN_PASSWORD)
    ds = client.upload_dataset(toy, target="label")["dataset"]["id"]
    job = client.wait_job(
        client.start_job(ds, "toy", trials=1, families=["complement_nb"])["id"],
        timeout=180,
        poll=0.3,
    )
    assert job["state"] == "succeeded", job
    client.predict("toy", toy.drop(columns="label").head(20).to_dict("records"))
    httpx.get(f"{url}/api/v1/datasets")  # no token: a 401

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: taxonomist\n"
        f"    static_configs: [{{targets: ['{url.split('://')[1]}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(q: str) -> list[dict]:
        try:
            return httpx.get(api, params={"query": q}, timeout=5).json()["data"]["result"]
        except (httpx.TransportError, KeyError, ValueError):
            return []

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not query('up{job="taxonomist"} == 1'):
            time.sleep(0.5)
        assert query('up{job="taxonomist"} == 1'), "Prometheus never scraped the API"
        denied = query('taxonomist_requests_total{route="/api/v1/datasets",status="401"}')
        assert denied and float(denied[0]["value"][1]) >= 1
        predicted = query('sum(taxonomist_predictions_total{model="toy"})')
        assert predicted and float(predicted[0]["value"][1]) == 20
        count = query('taxonomist_predicted_probability_count{model="toy"}')
        assert count and float(count[0]["value"][1]) == 20
        p50 = query(
            "histogram_quantile(0.5, sum by (le) "
            '(taxonomist_request_seconds_bucket{route="/api/v1/predict"}))'
        )
        assert p50 and 0 < float(p50[0]["value"][1]) < 5
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        client.close()
