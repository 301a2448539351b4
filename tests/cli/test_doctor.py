"""Wrong server URLs and credentials: ``taxonomist doctor`` and the service's ``/ready`` say
which part fails and why, within their timeouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

from taxonomist.config import Settings
from tests.conftest import ADMIN_PASSWORD, free_port, require_dvc_tools, serving_s3

TAXONOMIST = str(Path(sys.executable).with_name("taxonomist"))


def test_doctor_names_every_part_that_does_not_answer(tmp_path: Path) -> None:
    require_dvc_tools(s3=True)
    with serving_s3("doctor-test") as (url, _):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXONOMIST_", "AWS_"))}
        env |= {
            "TAXONOMIST_HOME": str(tmp_path),
            "TAXONOMIST_DATABASE_URL": f"postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/x",
            "TAXONOMIST_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "TAXONOMIST_ARTIFACTS_URI": "s3://doctor-test/models",
            "TAXONOMIST_DASK_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
            "TAXONOMIST_QDRANT_URL": f"http://127.0.0.1:{free_port()}",
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "not-the-key",
            "AWS_SECRET_ACCESS_KEY": "wrong",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        started = time.monotonic()
        done = subprocess.run(
            [TAXONOMIST, "doctor", "--json", "--timeout", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    parts = {p["part"]: p for p in report["parts"]}
    assert report["ok"] is False and set(parts) == {
        "database",
        "tracking",
        "artifacts",
        "dask",
        "qdrant",
    }
    assert not any(p["ok"] for p in parts.values()), parts
    assert "secret" not in done.stdout and "u:***@" in parts["database"]["points_to"]
    assert "Connection refused" in parts["database"]["detail"]
    assert "InvalidAccessKeyId" in parts["artifacts"]["detail"]  # the server answered: keys
    assert parts["dask"]["setting"] == "TAXONOMIST_DASK_ADDRESS"
    assert took < 60  # every part at once, each within its timeout (start-up included)


def test_doctor_on_one_box_is_all_local_and_ok(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXONOMIST_", "AWS_"))}
    env["TAXONOMIST_HOME"] = str(tmp_path)
    done = subprocess.run([TAXONOMIST, "doctor", "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert all(p["ok"] for p in json.loads(done.stdout)["parts"])


def test_ready_names_the_server_that_does_not_answer(tmp_path: Path) -> None:
    from taxonomist.api import create_app

    tracking = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        home=tmp_path, admin_password=ADMIN_PASSWORD, mlflow_uri=tracking, policy_interval=0
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while (r := client.get("/ready")).json()["engine"] != "ok":
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not ready" and body["database"] == "ok"
        assert body["servers"]["tracking"].startswith(f"{tracking}: ConnectError"), body
        assert set(body["servers"]) == {"tracking"}
