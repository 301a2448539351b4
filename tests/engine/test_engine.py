"""The training job's task, run in this process against a real metadata database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from taxonomist.config import Settings
from taxonomist.engine.jobs import run_job
from taxonomist.registry import Registry
from taxonomist.store import Database, Job
from taxonomist.store.accounts import create_user


def test_a_job_replays_its_config_and_honours_promote(toy: pd.DataFrame, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db = Database(settings.database)
    db.migrate()
    data = tmp_path / "toy.csv"
    toy.to_csv(data, index=False)
    with db.session() as s:
        owner = create_user(s, "alice", "password-1").id

    def run(**config: Any) -> dict[str, Any]:
        with db.session() as s:
            job = Job(owner_id=owner, dataset_id=None, config=config, progress={}, logs=[])
            s.add(job)
            s.flush()
            job_id = job.id
        outcome = run_job(job_id, settings.model_dump(mode="json"))
        with db.session() as s:
            assert s.get_one(Job, job_id).state == "succeeded", s.get_one(Job, job_id).error
        return outcome

    base = {
        "model_name": "toy",
        "target": "label",
        "dataset_path": str(data),
        "owner_id": owner,
        "trials": 2,
        "time_budget": None,
        "families": ["logreg"],
    }
    assert run(**base)["promoted"] is True  # the first version
    # the same score on the same protocol does not beat the champion ...
    assert run(**base)["promoted"] is False
    # ... unless the job asks for it
    assert run(**base, promote=True)["promoted"] is True
    registry = Registry(settings)
    assert int(registry.resolve("toy@champion").version) == 3
    stored = registry.config("toy/3")
    assert stored is not None and stored["promote"] is True and stored["families"] == ["logreg"]
    db.dispose()


def test_a_jobs_log_holds_only_the_lines_of_its_own_thread() -> None:
    """A worker runs several jobs at once, each on a thread, all logging to one root logger:
    each job's stored log must not hold another job's lines."""
    import logging
    import threading

    from taxonomist.engine.jobs import _JobLog

    log = _JobLog()
    logger = logging.getLogger("taxonomist.test_job_log")
    logger.setLevel(logging.INFO)
    logger.addHandler(log)
    try:
        other = threading.Thread(target=lambda: logger.info("a line of another job"))
        other.start()
        other.join()
        logger.info("a line of this job")
    finally:
        logger.removeHandler(log)
    assert [line.split(" ", 2)[2] for line in log.lines] == ["a line of this job"]


def test_no_secret_travels_with_a_job_to_dask(
    toy: pd.DataFrame, tmp_path: Path, database_url: str
) -> None:
    """The task's arguments (kept by the scheduler, shown by its dashboard) hold no password:
    the worker reads the database URL and the tokens from its own environment."""
    import time

    from taxonomist.engine import JobEngine

    if database_url.startswith("postgresql"):  # the test server trusts: any password works
        database_url = database_url.replace("postgres@", "postgres:db-pass-123@", 1)
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        admin_password="admin-pass-123",
        metrics_token="scrape-pass-123",
    )
    sent = settings.for_workers()
    assert "admin_password" not in sent and "metrics_token" not in sent
    assert ("database_url" in sent) is database_url.startswith("sqlite")
    db = Database(settings.database)
    db.migrate()
    data = tmp_path / "toy.csv"
    toy.to_csv(data, index=False)
    with db.session() as s:
        owner = create_user(s, "alice", "password-1").id
        config = {
            "model_name": "toy",
            "target": "label",
            "dataset_path": str(data),
            "owner_id": owner,
            "trials": 1,
            "families": ["logreg"],
        }
        job = Job(owner_id=owner, dataset_id=None, config=config, progress={}, logs=[])
        s.add(job)
        s.flush()
        job_id = job.id
    engine = JobEngine(settings, db)
    engine.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if engine.ready:
                engine.wake()
                seen += engine.client.run_on_scheduler(_task_arguments)
            with db.session() as s:
                state = s.get_one(Job, job_id).state
            if state in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        with db.session() as s:
            job = s.get_one(Job, job_id)
            assert job.state == "succeeded", job.error
    finally:
        engine.close()
        db.dispose()
    tasks = [t for t in seen if "taxonomist-job" in t]
    assert tasks, "the task was never seen on the scheduler"
    assert all(str(settings.home) in t for t in tasks)  # its arguments are in what we read
    for secret in ("db-pass-123", "admin-pass-123", "scrape-pass-123"):
        assert not any(secret in t for t in seen)


def _task_arguments(dask_scheduler: Any) -> list[str]:
    return [f"{key} {ts.run_spec!r}" for key, ts in dask_scheduler.tasks.items()]
