"""A real Prometheus scrapes the API's /metrics and sees requests, statuses and predictions."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOT, free_port, shared

SCRAPE_TOKEN = "prometheus-scrape-token"


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, object]:
    return {"metrics_token": SCRAPE_TOKEN}


@pytest.fixture(scope="module")
def prometheus() -> str:
    """The prometheus binary; without one the test is skipped (fails where CI requires it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("TAXONOMIST_REQUIRE_PROMETHEUS"):
            pytest.fail("TAXONOMIST_REQUIRE_PROMETHEUS is set but prometheus is not installed")
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    return binary


@contextlib.contextmanager
def scraping(binary: str, url: str, tmp_path: Path) -> Iterator[Callable[[str], list[dict]]]:
    """A real Prometheus scraping ``url`` every second; yields ``query(promql)`` (the result
    vector) once it has scraped the API."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    secret = tmp_path / "scrape-token"
    secret.write_text(SCRAPE_TOKEN)
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: taxonomist\n"
        f"    authorization: {{credentials_file: '{secret}'}}\n"
        f"    static_configs: [{{targets: ['{url.split('://')[1]}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            binary,
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
        yield query
    finally:
        prom.terminate()
        prom.wait(timeout=30)


@pytest.fixture(scope="module")
def clicks(live_server: str) -> tuple[str, list[dict]]:
    """A click-through model ("clicks", binary, 17 % positive) trained through the API on
    600 rows of the Avazu sample, and 40 other rows to predict."""
    from taxonomist.client import Client

    df = pd.read_csv(shared("avazu/train.csv"))
    client = Client.login(live_server, "admin", ADMIN_PASSWORD)
    ds = client.upload_dataset(df.head(600), target="click")["dataset"]["id"]
    job = client.start_job(ds, "clicks", trials=1, families=["logreg"])
    assert client.wait_job(job["id"], timeout=180, poll=0.3)["state"] == "succeeded"
    client.close()
    return "clicks", df.tail(40).drop(columns="click").to_dict("records")


def test_prometheus_sees_a_click_models_predicted_positive_rate(
    prometheus: str, live_server: str, tmp_path: Path, clicks: tuple[str, list[dict]]
) -> None:
    """Single-record click predictions through the API: the histogram and the counters count
    them, and the positive-rate gauge is the mean predicted click probability."""
    from taxonomist.client import Client

    name, records = clicks
    client = Client.login(live_server, "admin", ADMIN_PASSWORD)
    with scraping(prometheus, live_server, tmp_path) as query:
        # the first traffic of the model: the module's other click traffic comes later
        assert not query(f'taxonomist_predictions_total{{model="{name}"}}')
        clicked = []
        for record in records:
            answer = client.predict(name, [record])["predictions"][0]
            clicked.append(answer["probabilities"]["1"])
        assert 0.02 < np.mean(clicked) < 0.5 and np.std(clicked) > 0.01
        time.sleep(2.5)  # two scrapes

        def value(q: str) -> float:
            return float(query(q)[0]["value"][1])

        assert value(f'taxonomist_predictions_total{{model="{name}"}}') == len(records)
        assert value(f'taxonomist_predicted_probability_count{{model="{name}"}}') == len(records)
        total = value(f'taxonomist_predicted_positive_probability_total{{model="{name}"}}')
        assert total == pytest.approx(sum(clicked), abs=1e-4)
        gauge = value(f'taxonomist_predicted_positive_rate{{model="{name}"}}')
        assert gauge == pytest.approx(np.mean(clicked), abs=1e-6)
    client.close()


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
    httpx.get(f"{url}/api/v1/datasets")  # no token: a 401, refused before routing

    with scraping(prometheus, url, tmp_path) as query:
        denied = query('taxonomist_requests_total{route="unmatched",status="401"}')
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
    client.close()


def test_every_query_of_the_grafana_dashboard_returns_data(
    prometheus: str,
    live_server: str,
    tmp_path: Path,
    toy: pd.DataFrame,
    clicks: tuple[str, list[dict]],
) -> None:
    """Traffic, feedback, a drift report and a retrain, scraped by a real Prometheus: every
    PromQL expression of deploy/grafana/dashboards/taxonomist.json (its Grafana variables
    replaced by what Grafana would send) returns at least one series."""
    from taxonomist.client import Client

    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/taxonomist.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    client = Client.login(live_server, "admin", ADMIN_PASSWORD)
    ds = client.upload_dataset(toy.head(150), target="label")["dataset"]["id"]
    job = client.start_job(ds, "dash", trials=1, families=["logreg"])
    assert client.wait_job(job["id"], timeout=180, poll=0.3)["state"] == "succeeded"
    records = toy.tail(90).drop(columns="label").to_dict("records")
    answer = client.predict("dash", records)
    labels = toy["label"].tail(90).tolist()
    client.feedback(
        "dash",
        [
            {"request_id": answer["request_id"], "position": i, "label": labels[i]}
            for i in range(90)
        ],
    )
    assert client.drift("dash", days=1)["n_current"] == 90
    retrain = client.retrain("dash", toy.tail(90).to_csv(index=False).encode())
    assert client.wait_job(retrain["id"], timeout=180, poll=0.3)["state"] == "succeeded"

    with scraping(prometheus, live_server, tmp_path) as query:
        for _ in range(8):  # traffic while Prometheus scrapes: rates need two samples
            client.predict("dash", records[:10])
            client.predict(clicks[0], clicks[1][:5])  # a binary model: the positive rate
            time.sleep(0.5)
        empty = []
        for expr in exprs:
            q = expr.replace("$__rate_interval", "1m").replace('"$model"', '".+"')
            if not query(q):
                empty.append(q)
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
        verdict = query('taxonomist_drift_verdict{model="dash"}')
        assert float(verdict[0]["value"][1]) in (0, 1, 2)
        quality = query('taxonomist_live_quality{model="dash",metric="accuracy"}')
        assert 0 < float(quality[0]["value"][1]) <= 1
    client.close()
