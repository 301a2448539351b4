"""Faults: ``kill -9`` of the service while it stores an upload, trains and registers a model,
and builds a retrieval model. On the next start nothing half-written is visible (no dataset
without its file, no model version without its tags, no retrieval model without its
collections), what the kill left behind is swept, and every job it cut off says so.

Each test runs ``taxonomist serve`` in a process of its own on a fresh home, sends SIGKILL to
that process alone (the processes it started, its Dask worker and parse workers, must end by
themselves), and starts it again on the same home.
Each kill lands at a moment the test can see from outside: the upload's file is in the data
folder, the job is running, the registration is writing its model version (held there by a
trigger in MLflow's SQLite store), the build's collections exist and it is tuning.
"""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest

from tests.conftest import ADMIN_PASSWORD, free_port, small_squad, wait_http

# A job whose process died is failed once its lease runs out (3 s here), by the next service.
STOPPED = ("The process running this job stopped", "The service process holding this job stopped")
LEASE_SECONDS = 3
RECORD = {"title": "pasta sauce with garlic", "store": "eu", "price": 3.0}
ENDED = {"succeeded", "failed", "cancelled"}


class Service:
    """``taxonomist serve`` on ``home`` in a session of its own; ``http``: a client signed in
    as the admin."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(timeout=60)

    def start(self) -> Service:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAXONOMIST_")}
        env |= {
            "TAXONOMIST_HOME": str(self.home),
            "TAXONOMIST_DATABASE_URL": f"sqlite:///{self.home / 'taxonomist.db'}",
            "TAXONOMIST_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "TAXONOMIST_POLICY_INTERVAL": "0",
            "TAXONOMIST_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "taxonomist"), "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/ready", timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- the service's log\n{self.log_tail()}") from None
        self.http.base_url = httpx.URL(url)
        self.http.headers.pop("Authorization", None)  # the last start's token
        self.http.headers.update(self.login("admin", ADMIN_PASSWORD))
        return self

    def login(self, username: str, password: str) -> dict[str, str]:
        r = self.http.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def member(self) -> dict[str, str]:
        name = f"user-{uuid.uuid4().hex[:8]}"
        r = self.http.post("/api/v1/users", json={"username": name, "password": "password-123"})
        assert r.status_code == 201, r.text
        return self.login(name, "password-123")

    def kill(self) -> None:
        """SIGKILL to the service's process only, as ``kill -9 PID`` does; then wait for the
        processes it started (the Dask worker, the parse workers) to end by themselves."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive := [p for p in children if _alive(p)]:
            assert time.monotonic() < deadline, f"still running 30 s after the kill: {alive}"
            time.sleep(0.1)

    def close(self) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError):  # the session's processes, if any is left
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.http.close()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def job(self, headers: dict[str, str], job_id: int) -> Any:
        r = self.http.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, headers: dict[str, str], job_id: int, timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(headers, job_id)
            if job["state"] in ENDED:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not end in {timeout} s: {job}")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess too
        return False


@contextmanager
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "home", tmp_path / "serve.log")
    try:
        yield svc
    finally:
        svc.close()


def upload(
    svc: Service, df: pd.DataFrame, headers: dict[str, str] | None = None, **form: str
) -> Any:
    """``df`` as a CSV upload, by ``headers``' user (default: the admin); the response."""
    csv = df.to_csv(index=False).encode()
    return svc.http.post(
        "/api/v1/datasets", files={"file": ("data.csv", csv)}, data=form, headers=headers
    )


def assert_stopped(svc: Service, member: dict[str, str], job_id: int) -> None:
    """The job ends as failed, saying why, once its lease has run out."""
    deadline = time.monotonic() + 10 * LEASE_SECONDS
    while (job := svc.job(member, job_id))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "failed", job
    assert job["error"].startswith(STOPPED), job["error"]
    assert job["finished_at"] is not None and job["progress"]["phase"] == "failed"


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# -- an upload -----------------------------------------------------------------------------
@pytest.mark.slow
def test_an_upload_cut_off_by_a_kill_leaves_no_dataset_and_its_file_is_swept(
    toy: pd.DataFrame, tmp_path: Path
) -> None:
    with service(tmp_path) as svc:
        folder = svc.home / "datasets"
        svc.start()
        kept = upload(svc, toy, name="kept")
        assert kept.status_code == 201, kept.text
        (kept_file,) = files_in(folder)

        # 1. Killed while the body streams in: it is spooled outside the home.
        boundary = uuid.uuid4().hex
        sent = threading.Event()

        def slow_body() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="slow.csv"\r\nContent-Type: text/csv\r\n\r\n'
            ).encode()
            yield toy.to_csv(index=False).encode()
            for _ in range(600):
                sent.set()
                yield b"sport,eu,1.0,football team goal match\n" * 1000
                time.sleep(0.05)

        def send_slowly() -> Any:
            return svc.http.post(
                "/api/v1/datasets",
                content=slow_body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )

        outcome: list[Any] = []
        sender = threading.Thread(target=lambda: outcome.append(_try(send_slowly)))
        sender.start()
        assert sent.wait(30)
        time.sleep(1)
        svc.kill()
        sender.join(timeout=30)
        assert isinstance(outcome[0], httpx.TransportError), outcome  # the server died under it
        svc.start()
        assert [d["name"] for d in svc.http.get("/api/v1/datasets").json()] == ["kept"]
        assert files_in(folder) == {kept_file}

        # 2. Killed while it stores the file (copies, checks, profiles): the file is in the
        # data folder, its row is not written yet.
        big = pd.concat([toy] * 800, ignore_index=True)  # ~10 MB: seconds to profile
        outcome.clear()
        sender = threading.Thread(target=lambda: outcome.append(_try(lambda: upload(svc, big))))
        sender.start()
        deadline = time.monotonic() + 60
        while files_in(folder) == {kept_file}:
            assert time.monotonic() < deadline, "the upload never reached the data folder"
            time.sleep(0.005)
        svc.kill()
        sender.join(timeout=30)
        assert isinstance(outcome[0], httpx.TransportError), outcome  # no answer came
        left = files_in(folder) - {kept_file}
        assert len(left) == 1, left  # its .part (being copied) or its file (being profiled)

        svc.start()
        datasets = svc.http.get("/api/v1/datasets").json()
        assert [d["name"] for d in datasets] == ["kept"]
        assert files_in(folder) == {kept_file}  # the half-stored upload's file is gone
        r = svc.http.get(f"/api/v1/datasets/{datasets[0]['id']}/download")
        assert r.status_code == 200 and r.content == toy.to_csv(index=False).encode()
        assert upload(svc, toy, name="after").status_code == 201


def test_the_sweep_removes_files_without_a_row_but_not_an_upload_under_way(
    tmp_path: Path,
) -> None:
    """The start-up sweep (here: of a second process starting while an upload is profiled)
    leaves an upload in progress alone, and removes what a killed one left."""
    from fastapi import UploadFile

    from taxonomist.api.services.datasets import store_file
    from taxonomist.api.services.orphans import sweep_uploads
    from taxonomist.config import Settings
    from taxonomist.store import Database
    from taxonomist.store.accounts import ensure_admin

    settings = Settings(home=tmp_path / "home")
    db = Database(settings.database)
    db.migrate()
    with db.session() as s:
        ensure_admin(s, ADMIN_PASSWORD)
    folder = settings.datasets_dir
    swept_meanwhile: list[list[Path]] = []

    def describe(path: Path) -> dict[str, Any]:
        swept_meanwhile.append(sweep_uploads(folder, db))
        assert path.exists()
        fields = {"n_rows": 1, "n_columns": 1, "target": None, "roles": {"title": "text"}}
        return {**fields, "report": {}, "profile": {}}

    upload = UploadFile(io.BytesIO(b"title\npasta\n"), filename="a.csv")
    out, _ = store_file(settings, db, 1, upload, None, describe, "upload_dataset")
    assert swept_meanwhile == [[]] and out.name == "a.csv"
    (stored,) = files_in(folder)
    for left in ("0a1b.csv.part", "2c3d.csv"):  # cut off while copied, while profiled
        (folder / left).write_bytes(b"title\n")
    assert [p.name for p in sweep_uploads(folder, db)] == ["0a1b.csv.part", "2c3d.csv"]
    assert files_in(folder) == {stored}
    db.dispose()


def _try(call: Any) -> Any:
    try:
        return call()
    except httpx.TransportError as exc:
        return exc


# -- a training job ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_job_killed_while_it_trains_fails_saying_why_and_the_queue_goes_on(
    toy: pd.DataFrame, tmp_path: Path
) -> None:
    with service(tmp_path) as svc:
        svc.start()
        member = svc.member()
        r = upload(svc, toy, member, target="label")
        dataset = r.json()["dataset"]["id"]
        jobs = [
            svc.http.post(
                "/api/v1/jobs",
                json={
                    "dataset_id": dataset,
                    "model_name": name,
                    "trials": 1,
                    "families": ["logreg"],
                },
                headers=member,
            ).json()["id"]
            for name in ("killed", "queued")
        ]
        deadline = time.monotonic() + 120
        while (job := svc.job(member, jobs[0]))["state"] == "queued":
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["state"] == "running", job  # max_concurrent_jobs=1: the other waits
        svc.kill()

        svc.start()
        assert_stopped(svc, member, jobs[0])
        queued = svc.wait_job(member, jobs[1])  # not started when the service died: it runs
        assert queued["state"] == "succeeded", queued
        models = {m["name"]: m for m in svc.http.get("/api/v1/models", headers=member).json()}
        assert set(models) == {"queued"}  # and the killed job registered nothing
        assert_whole(svc, models["queued"])


def assert_whole(svc: Service, model: dict[str, Any]) -> None:
    """Every version of ``model`` has the tags a registration writes, and predicts."""
    assert model["versions"], model
    for v in model["versions"]:
        assert v["metric"] == "f1_macro" and v["primary"] is not None, v
        assert v["promotion"], v
        ref = f"{model['name']}/{v['version']}"
        r = svc.http.post("/api/v1/predict", json={"model": ref, "records": RECORD})
        assert r.status_code == 200, r.text


# -- a registration ------------------------------------------------------------------------
@contextmanager
def stalled_registration(mlflow_db: Path) -> Iterator[None]:
    """Make the first write of a model version's ``primary`` tag (with the version itself, or
    just after it) spin inside SQLite for minutes: the registration stops there, mid-write,
    until the test kills it. Removed when the block ends."""
    db = sqlite3.connect(mlflow_db, isolation_level=None)
    db.executescript(
        """
        CREATE TABLE faults_stall (x INTEGER);
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000)
        INSERT INTO faults_stall SELECT x FROM n;
        CREATE TRIGGER faults_stall_primary BEFORE INSERT ON model_version_tags
        WHEN NEW.key = 'primary'
        BEGIN SELECT count(*) FROM faults_stall a, faults_stall b, faults_stall c; END;
        """
    )
    try:
        yield
    finally:
        db.executescript("DROP TRIGGER faults_stall_primary; DROP TABLE faults_stall;")
        db.close()


@pytest.mark.slow
def test_a_registration_cut_off_by_a_kill_leaves_no_version(
    toy: pd.DataFrame, tmp_path: Path
) -> None:
    with service(tmp_path) as svc:
        svc.start()
        member = svc.member()
        dataset = upload(svc, toy, member, target="label").json()["dataset"]["id"]
        assert svc.http.get("/api/v1/models").json() == []  # the registry's store now exists
        mlflow_db = svc.home / "mlflow.db"
        assert mlflow_db.exists(), "the registry's SQLite store was not created"
        body = {"dataset_id": dataset, "model_name": "toy", "trials": 1, "families": ["logreg"]}
        with stalled_registration(mlflow_db):
            job = svc.http.post("/api/v1/jobs", json=body, headers=member).json()["id"]
            watch = sqlite3.connect(mlflow_db)
            deadline = time.monotonic() + 120
            # The registered model is created just before its first version is written.
            while not watch.execute("SELECT 1 FROM registered_models WHERE name='toy'").fetchone():
                assert time.monotonic() < deadline, svc.log_tail()
                time.sleep(0.02)
            time.sleep(1.0)  # now in the version's write, stalled
            watch.close()
            assert svc.job(member, job)["state"] == "running"
            svc.kill()

        svc.start()
        assert_stopped(svc, member, job)
        for model in svc.http.get("/api/v1/models").json():  # the admin sees every model
            assert model["versions"] == [], model  # no half-written version

        # The name is not lost: the same member trains it again, and gets a whole champion.
        again = svc.http.post("/api/v1/jobs", json=body, headers=member).json()["id"]
        assert svc.wait_job(member, again)["state"] == "succeeded"
        (model,) = svc.http.get("/api/v1/models", headers=member).json()
        assert_whole(svc, model)
        assert [v["aliases"] for v in model["versions"]] == [["champion"]]
        r = svc.http.post(
            "/api/v1/predict", json={"model": "toy", "records": RECORD}, headers=member
        )
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "cooking"


# -- a retrieval build ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_retrieval_build_cut_off_by_a_kill_leaves_no_model_and_its_collections_are_swept(
    tmp_path: Path,
) -> None:
    api = "/api/v1/retrieval"
    with service(tmp_path) as svc:
        root = svc.home / "retrieval"
        svc.start()
        member = svc.member()
        r = svc.http.post(
            f"{api}/datasets", files={"file": ("squad.json", small_squad(646))}, headers=member
        )
        assert r.status_code == 201, r.text
        dataset = r.json()["dataset"]["id"]
        params = {"method": "bm25", "sentences": True, "tune": True}
        body = {"name": "qa", "dataset_id": dataset, "params": params}
        build = svc.http.post(f"{api}/models", json=body, headers=member).json()["id"]
        queued = svc.http.post(
            f"{api}/models", json={**body, "name": "qa-next"}, headers=member
        ).json()["id"]
        deadline = time.monotonic() + 120
        # Tuning: both collections are filled, the model's record is not written yet.
        while (job := svc.job(member, build))["progress"].get("phase") != "tuning":
            assert job["state"] in {"queued", "running"} and time.monotonic() < deadline, job
            time.sleep(0.02)
        svc.kill()
        assert len(list((root / "collections").iterdir())) == 2  # what the build left
        assert list((root / "models").iterdir()) == []

        svc.start()
        assert_stopped(svc, member, build)
        # A retrieval job waits in the service's own queue: it died with the service.
        assert_stopped(svc, member, queued)
        assert svc.http.get(f"{api}/models", headers=member).json() == []
        assert list((root / "collections").iterdir()) == []  # swept when the store opened

        # The name is free again, and the new build is whole.
        again = svc.http.post(f"{api}/models", json=body, headers=member).json()["id"]
        assert svc.wait_job(member, again)["state"] == "succeeded"
        (model,) = svc.http.get(f"{api}/models", headers=member).json()
        assert model["id"] == "qa" and model["n_passages"] == 646
        assert len(list((root / "collections").iterdir())) == 2
        ask = {"question": "When did Beyonce start becoming popular?", "k": 3}
        r = svc.http.post(f"{api}/models/qa/search", json=ask, headers=member)
        assert r.status_code == 200 and len(r.json()["passages"]) == 3, r.text
