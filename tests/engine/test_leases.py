"""Job leases: several service processes (here: several engines) share one queue in a real
metadata database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from taxonomist.config import Settings
from taxonomist.engine.jobs import JobEngine, heartbeat
from taxonomist.store import Database, Job
from taxonomist.store.accounts import create_user


@pytest.fixture
def db(database_url: str) -> Database:
    d = Database(database_url)
    d.migrate()
    return d


def engine(db: Database, tmp_path: object, jobs: int = 1, lease: float = 30.0) -> JobEngine:
    """An engine that is never connected to Dask: its queue decisions are what is tested."""
    settings = Settings(home=tmp_path, max_concurrent_jobs=jobs, job_lease_seconds=lease)
    return JobEngine(settings, db)


def add_jobs(db: Database, n: int, **columns: object) -> list[int]:
    with db.session() as s:
        owner = create_user(s, f"u{time.monotonic_ns()}", "password-1").id
        jobs = [
            Job(owner_id=owner, config={"model_name": f"m{i}"}, progress={}, logs=[], **columns)
            for i in range(n)
        ]
        s.add_all(jobs)
        s.flush()
        return [j.id for j in jobs]


def row(db: Database, job_id: int) -> Job:
    with db.session() as s:
        return s.get_one(Job, job_id)


def test_the_concurrency_limit_holds_across_processes(db: Database, tmp_path: object) -> None:
    ids = add_jobs(db, 4)
    first, second = engine(db, tmp_path, jobs=2), engine(db, tmp_path, jobs=2)
    assert first._take() == ids[:2]
    taken = [j for j in ids if row(db, j).lease_owner is not None]
    assert taken == ids[:2] and all(row(db, j).lease_owner == first.name for j in taken)
    assert second._take() == []  # two handed over in all: the other process waits
    with db.session() as s:  # one of them ends: a slot is free for whoever looks first
        s.get_one(Job, taken[0]).state = "succeeded"
    assert second._take() == [ids[2]]
    assert first._take() == []


def test_taking_at_once_in_two_processes_never_exceeds_the_limit(
    db: Database, tmp_path: object
) -> None:
    add_jobs(db, 6)
    engines = [engine(db, tmp_path, jobs=3) for _ in range(4)]
    taken: list[int] = []
    barrier = threading.Barrier(len(engines))

    def take(e: JobEngine) -> None:
        barrier.wait()
        taken.extend(e._take())

    threads = [threading.Thread(target=take, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 3 and len(set(taken)) == 3


def test_a_restart_leaves_a_siblings_running_job_alone(db: Database, tmp_path: object) -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    (running,) = add_jobs(db, 1, state="running", lease_owner="worker elsewhere", lease_until=later)
    restarted = engine(db, tmp_path)
    with db.session() as s:
        restarted._expire(s)
    assert row(db, running).state == "running"
    with db.session() as s:  # its worker stops renewing: the lease runs out
        s.get_one(Job, running).lease_until = datetime.now(UTC) - timedelta(seconds=1)
    with db.session() as s:
        restarted._expire(s)
    job = row(db, running)
    assert job.state == "failed" and job.error.startswith("The process running this job stopped")
    assert job.lease_owner is None and job.finished_at is not None


def test_a_job_handed_over_by_a_process_that_died_is_queued_again(
    db: Database, tmp_path: object
) -> None:
    gone = datetime.now(UTC) - timedelta(seconds=1)
    (dask_job,) = add_jobs(db, 1, lease_owner="service dead", lease_until=gone)
    (service_job,) = add_jobs(db, 1, kind="retrieval_build", lease_owner="dead", lease_until=gone)
    e = engine(db, tmp_path)
    with db.session() as s:
        e._expire(s)
    assert row(db, dask_job).state == "queued" and row(db, dask_job).lease_owner is None
    assert e._take() == [dask_job]
    job = row(db, service_job)  # it ran in the dead process's own thread: it cannot run here
    assert job.state == "failed" and "holding this job stopped" in job.error


def test_the_holder_renews_leases(db: Database, tmp_path: object) -> None:
    e = engine(db, tmp_path, jobs=2, lease=3.0)
    queued, stuck = add_jobs(db, 2)
    assert e._take() == [queued, stuck]
    e.futures[queued] = object()  # handed to Dask; `stuck` could not be (no scheduler)
    before = {j: row(db, j).lease_until for j in (queued, stuck)}
    time.sleep(0.05)
    with db.session() as s:
        e._renew(s)
    assert row(db, queued).lease_until > before[queued]
    assert row(db, stuck).lease_until == before[stuck]  # it lapses, and is queued again
    (running,) = add_jobs(db, 1, state="running", lease_until=datetime.now(UTC))
    start = row(db, running).lease_until
    with heartbeat(db, running, "worker here", 3.0):
        time.sleep(1.5)  # a beat every second
    job = row(db, running)
    assert job.lease_until > start + timedelta(seconds=2) and job.lease_owner == "worker here"


def test_a_task_run_again_for_a_running_job_fails_it_saying_its_worker_died(
    db: Database, tmp_path: object
) -> None:
    """A scheduler that retries tasks starts a lost worker's job again on another: the job is
    failed then and there, not trained twice or left to its lease."""
    from taxonomist.engine.jobs import WORKER_DIED, run_job

    later = datetime.now(UTC) + timedelta(seconds=30)
    (running,) = add_jobs(db, 1, state="running", lease_owner="worker lost", lease_until=later)
    settings = Settings(home=tmp_path, database_url=db.url)
    assert run_job(running, settings.model_dump(mode="json")) == {"skipped": True}
    job = row(db, running)
    assert job.state == "failed" and job.error == WORKER_DIED
