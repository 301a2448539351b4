"""Training and retraining jobs on Dask.

The database is the source of truth: a job row is created ``queued``; the engine's loop hands
queued jobs to the cluster while fewer than ``max_concurrent_jobs`` run in all the service
processes that share the database; the task itself (:func:`run_job`, in a worker process)
marks the row ``running``, writes progress and log lines as trials finish, checks the row's
cancel flag, and writes the outcome.

Every unfinished job has a lease (``lease_until``): the service process that handed it to
Dask renews it while it waits there, the worker running it renews it every third of
``job_lease_seconds`` (a heartbeat thread). What a task cannot write — its worker died — the
process that handed it over writes; a job whose lease ran out (its worker and that process
are both gone) is failed by whichever service process sees it first. A restarting process
fails nothing of its siblings'.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from taxonomist.config import Settings
from taxonomist.errors import ServiceUnavailableError, TaxonomistError
from taxonomist.models.config import TrainConfig
from taxonomist.store import UNFINISHED, Database, Job, JobState, ModelOwner

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 0.5  # seconds between progress writes
MAX_LOG_LINES = 500
DASK_KINDS = ("train", "retrain")  # the jobs that run on the cluster; others in the service
WORKER_DIED = (
    "The worker running this job died (killed, or out of memory). Try a smaller time budget or "
    "dataset, or give the workers more memory."
)
DISPATCH_LOCK = 7_270_101  # PostgreSQL advisory lock: one process at a time hands jobs over


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is set."""


def _now() -> datetime:
    return datetime.now(UTC)


class _JobLog(logging.Handler):
    """Collects the training's log lines for the job row: those of the thread that runs the
    job (a worker runs several jobs at once, each on a thread, all logging to one root)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        self.lines.append(self.format(record))
        del self.lines[:-MAX_LOG_LINES]


def _lease(seconds: float) -> datetime:
    return _now() + timedelta(seconds=seconds)


def _claim(db: Database, job_id: int, holder: str, lease: float) -> bool:
    """Mark a queued job running, atomically: with several service processes only one runs
    it; a job cancelled meanwhile is not claimed. The claimer holds its lease."""
    with db.session() as s:
        claimed = s.execute(  # type: ignore[attr-defined]
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED.value, ~Job.cancel_requested)
            .values(
                state=JobState.RUNNING.value,
                started_at=_now(),
                lease_owner=holder,
                lease_until=_lease(lease),
            )
        ).rowcount
    return bool(claimed)


@contextmanager
def heartbeat(db: Database, job_id: int, holder: str, lease: float) -> Iterator[None]:
    """Renew the lease of running job ``job_id`` every third of ``lease`` seconds while the
    block runs (a thread: a long trial blocks no renewal)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease / 3):
            try:
                with db.session() as s:
                    s.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.state == JobState.RUNNING.value)
                        .values(lease_owner=holder, lease_until=_lease(lease))
                    )
            except Exception as exc:  # the database is away: try again next beat
                logger.warning("job %s: could not renew its lease: %s", job_id, exc)

    thread = threading.Thread(target=renew, name=f"taxonomist-lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def worker_name() -> str:
    """This process, as a lease holder: host, pid and a few random characters."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _fail_rerun(db: Database, job_id: int) -> None:
    """The task of a job that is running already runs again: a scheduler that retries tasks
    (``distributed.scheduler.allowed-failures`` above 0) lost the worker that ran it. One
    task a job (its key), so the job's worker is gone: it fails now, saying so, rather than
    when its lease runs out."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is not None and job.state == JobState.RUNNING.value:
            _finish(s, job, JobState.FAILED, error=WORKER_DIED)


def run_job(job_id: int, settings_data: dict[str, Any]) -> dict[str, Any]:
    """Run training or retraining job ``job_id`` to its end; the Dask task (runs in a worker
    process)."""
    settings = Settings(**settings_data)
    db = Database(settings.database)
    holder, lease = f"worker {worker_name()}", settings.job_lease_seconds
    try:
        if not _claim(db, job_id, holder, lease):
            _fail_rerun(db, job_id)
            return {"skipped": True}
        with db.session() as s:
            job = s.get_one(Job, job_id)
            config, kind = dict(job.config), job.kind
        log = _JobLog()
        root = logging.getLogger("taxonomist")
        root.addHandler(log)
        root.setLevel(logging.INFO)
        last = [0.0]

        def on_progress(p: Any) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY and p.phase == "search":
                return
            last[0] = now
            progress = {
                "phase": p.phase,
                "trials_done": p.trials_done,
                "trials_pruned": p.trials_pruned,
                "best_score": p.best_score,
                "best_family": p.best_family,
                "elapsed": round(p.elapsed, 2),
                "time_left": None if p.time_left is None else round(p.time_left, 2),
                "time_budget": p.time_budget,
            }
            with db.session() as s:
                s.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(progress=progress, logs=list(log.lines))
                )
                if s.scalar(select(Job.cancel_requested).where(Job.id == job_id)):
                    raise JobCancelled

        def end(state: JobState, **written: Any) -> None:
            with db.session() as s:
                _finish(s, s.get(Job, job_id), state, log=log, **written)

        try:
            with heartbeat(db, job_id, holder, lease):
                if kind == "retrain":
                    outcome = _retrain(config, settings, db, on_progress)
                else:
                    outcome = _train(config, settings, on_progress)
        except JobCancelled:
            end(JobState.CANCELLED, error="Cancelled.")
            return {"cancelled": True}
        except TaxonomistError as exc:
            end(JobState.FAILED, error=exc.message)
            return {"failed": exc.message}
        except Exception as exc:  # the job fails; the worker and the service go on
            logger.exception("job %s failed", job_id)
            end(
                JobState.FAILED,
                error=f"Training failed unexpectedly: {exc.__class__.__name__}: {exc}",
            )
            return {"failed": str(exc)}
        finally:
            root.removeHandler(log)
        with db.session() as s:
            if kind == "train" and s.get(ModelOwner, config["model_name"]) is None:
                s.add(ModelOwner(name=config["model_name"], owner_id=config["owner_id"]))
            _finish(s, s.get(Job, job_id), JobState.SUCCEEDED, log=log, result=outcome)
        return outcome
    finally:
        db.dispose()


def _train(
    config: dict[str, Any], settings: Settings, on_progress: Callable[[Any], None]
) -> dict[str, Any]:
    from taxonomist.models.train import train
    from taxonomist.registry import Registry
    from taxonomist.store.files import dataset_files

    train_config = job_train_config(config)
    check_stores(settings)  # before minutes of training whose model could not be kept
    data = dataset_files(settings).local(config["dataset_path"])  # from the bucket, once
    result = train(data, train_config, on_progress=on_progress, settings=settings)
    tags = {"dataset_id": str(config["dataset_id"])} if config.get("dataset_id") else {}
    try:
        result.register(Registry(settings), tags=tags)
    except TaxonomistError:
        raise
    except Exception as exc:  # MLflow's or boto3's: the tracking server or the bucket
        raise ServiceUnavailableError(
            f"The model trained, but registering it failed: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}. Check the tracking server "
            "and the artifact store (taxonomist doctor), then start the job again."
        ) from exc
    return result.summary()


def check_stores(settings: Settings) -> None:
    """Raise :class:`ServiceUnavailableError` when the tracking server or the S3 artifact
    store (those that are servers) does not answer, naming it and why."""
    from taxonomist.connections import check, is_server

    for part in ("tracking", "artifacts"):
        if is_server(settings, part):
            status = check(settings, part, timeout=10)
            if not status.ok:
                raise ServiceUnavailableError(
                    f"The {part} store ({status.points_to}) does not answer: {status.detail}"
                )


def _retrain(
    config: dict[str, Any], settings: Settings, db: Database, on_progress: Callable[[Any], None]
) -> dict[str, Any]:
    """A challenger of the model's champion (``taxonomist.monitor.retrain``): its journal
    entry is the job's result."""
    import pandas as pd

    from taxonomist.monitor.retrain import retrain
    from taxonomist.registry import Registry
    from taxonomist.store.files import retrain_files

    check_stores(settings)
    path = config.get("data_path")
    return retrain(
        Registry(settings),
        db,
        config["model_name"],
        pd.read_parquet(retrain_files(settings).local(path)) if path else None,
        trigger=config.get("trigger", "manual"),
        reason=config.get("reason", ""),
        source=config.get("source", "file"),
        data_name=config.get("data_name"),
        user_id=config.get("owner_id"),
        settings=settings,
        on_progress=on_progress,
    )


def job_train_config(config: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` a training job's stored config describes."""
    fields = set(TrainConfig.model_fields) - {"data", "name"}
    return TrainConfig.parse(
        {k: v for k, v in config.items() if k in fields} | {"name": config["model_name"]},
        source=f"the config of the job for '{config.get('model_name')}'",
    )


def _finish(
    s: Any,
    job: Job | None,
    state: JobState,
    *,
    log: _JobLog | None = None,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    if job is None:
        return
    job.state, job.error, job.result, job.finished_at = state.value, error, result, _now()
    job.lease_owner = job.lease_until = None
    if log is not None:
        job.logs = list(log.lines)
    job.progress = {**(job.progress or {}), "phase": state.value}


class JobEngine:
    """Hands queued jobs to Dask and reconciles what the tasks could not write themselves."""

    def __init__(self, settings: Settings, db: Database, *, poll: float = 0.3) -> None:
        self.settings, self.db, self.poll = settings, db, poll
        self.name = f"service {worker_name()}"  # the lease holder of the jobs it hands over
        self.lease = settings.job_lease_seconds
        self.client: Any = None
        self.cluster: Any = None
        self.futures: dict[int, Any] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (a LocalCluster takes ~2 s to start; the API answers
        meanwhile, ``ready`` says 503). The jobs a stopped service process left behind are
        failed by the loop once their leases run out, not here: a sibling process may be
        running them."""
        self._thread = threading.Thread(target=self._run, name="taxonomist-jobs", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        # A worker that dies takes its job with it: no silent retry of a 10-minute training.
        dask.config.set({"distributed.scheduler.allowed-failures": 0})
        for name in [n for n in logging.root.manager.loggerDict if n.startswith("distributed")]:
            logging.getLogger(name).setLevel(logging.WARNING)  # its INFO chatter is not ours
        if self.settings.dask_address:
            self.client = Client(self.settings.dask_address, timeout=10)
        else:
            self.cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=self.settings.max_concurrent_jobs,
                processes=True,
                dashboard_address=None,
                memory_limit=0,
                silence_logs=logging.ERROR,
                env=self.settings.secret_environment(),  # the secrets the tasks do not carry
            )
            self.client = Client(self.cluster)

    @property
    def ready(self) -> bool:
        return self.client is not None and self.client.status == "running"

    def check(self) -> None:
        if not self.ready:
            why = f": {self.error}" if self.error else " yet (starting)"
            raise ServiceUnavailableError(f"The job engine (Dask) is not connected{why}.")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def holding(self) -> dict[str, Any]:
        """The lease columns of a job this process creates and keeps until it runs it."""
        return {"lease_owner": self.name, "lease_until": _lease(self.lease)}

    def wake(self) -> None:
        """Look at the queue now (a job was created or cancelled)."""
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._connect()
        except Exception as exc:  # reported through ready/check
            self.error = f"{exc.__class__.__name__}: {exc}"
            logger.error("cannot start the Dask engine: %s", self.error)
            return
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:  # a database hiccup must not end the loop
                logger.exception("job loop")
            self._wake.wait(self.poll)
            self._wake.clear()

    def reconcile(self) -> None:
        for job_id, fut in list(self.futures.items()):
            if not fut.done():
                continue
            del self.futures[job_id]
            if fut.status == "cancelled":
                self._end_unfinished(job_id, JobState.CANCELLED, "Cancelled before it started.")
            elif fut.status == "error":
                self._end_unfinished(job_id, JobState.FAILED, _failure_reason(fut))
        with self.db.session() as s:
            self._renew(s)
            self._expire(s)
            cancelled = s.scalars(
                select(Job).where(
                    Job.kind.in_(DASK_KINDS),
                    Job.state == JobState.QUEUED.value,
                    Job.cancel_requested,
                )
            ).all()
            for job in cancelled:
                if job.id not in self.futures:
                    _finish(s, job, JobState.CANCELLED, error="Cancelled before it started.")
        queued = self._take()
        # What a worker needs to reach the stores; no secret travels with the task.
        settings = self.settings.for_workers()
        for job_id in queued:
            self.futures[job_id] = self.client.submit(
                run_job, job_id, settings, key=f"taxonomist-job-{job_id}", pure=False
            )

    def _renew(self, s: Session) -> None:
        """Renew the leases of the queued jobs this process holds (handed to Dask, or waiting
        for its retrieval worker); running ones are their worker's to renew. One it leased
        but could not hand over (the scheduler went away) lapses and is queued again."""
        s.execute(
            update(Job)
            .where(
                Job.lease_owner == self.name,
                Job.state == JobState.QUEUED.value,
                Job.kind.not_in(DASK_KINDS) | Job.id.in_(list(self.futures)),
            )
            .values(lease_until=_lease(self.lease))
        )

    def _expire(self, s: Session) -> None:
        """Fail the running jobs whose lease ran out, and the queued service-process jobs
        (retrieval) whose process is gone; a queued Dask job whose handing process is gone
        goes back to the queue."""
        lapsed = or_(Job.lease_until.is_(None), Job.lease_until < _now())
        for job in s.scalars(select(Job).where(Job.state.in_(UNFINISHED), lapsed)):
            if job.state == JobState.RUNNING.value:
                _finish(
                    s,
                    job,
                    JobState.FAILED,
                    error="The process running this job stopped: its lease ran out (it died, "
                    "or lost the database). Start the job again.",
                )
            elif job.kind not in DASK_KINDS:
                _finish(
                    s,
                    job,
                    JobState.FAILED,
                    error="The service process holding this job stopped before it ran; start "
                    "the job again.",
                )
            elif job.lease_owner is not None:
                job.lease_owner = None  # handed to Dask by a process that is gone: again

    def _take(self) -> list[int]:
        """Lease the next queued Dask jobs while fewer than ``max_concurrent_jobs`` are
        running or handed over in every process: the count and the lease in one transaction
        that no other process's can interleave (an advisory lock on PostgreSQL, SQLite's
        write lock taken first)."""
        with self.db.session() as s:
            if self.db.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DISPATCH_LOCK})
            else:  # a write first: the transaction holds the write lock from its start
                s.execute(update(Job).where(Job.id == -1).values(lease_owner=None))
            live = Job.lease_until >= _now()
            active = s.scalar(
                select(func.count(Job.id)).where(
                    Job.kind.in_(DASK_KINDS),
                    (Job.state == JobState.RUNNING.value)
                    | ((Job.state == JobState.QUEUED.value) & Job.lease_owner.is_not(None) & live),
                )
            )
            free = self.settings.max_concurrent_jobs - int(active or 0)
            if free <= 0:
                return []
            ids = list(
                s.scalars(
                    select(Job.id)
                    .where(
                        Job.kind.in_(DASK_KINDS),
                        Job.state == JobState.QUEUED.value,
                        ~Job.cancel_requested,
                        Job.lease_owner.is_(None),
                    )
                    .order_by(Job.id)
                    .limit(free)
                )
            )
            if ids:
                s.execute(
                    update(Job)
                    .where(Job.id.in_(ids))
                    .values(lease_owner=self.name, lease_until=_lease(self.lease))
                )
        return ids

    def _end_unfinished(self, job_id: int, state: JobState, reason: str) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None and not JobState(job.state).finished:
                _finish(s, job, state, error=reason)

    def cancel(self, job_id: int) -> None:
        """Ask a job to stop: a queued job is cancelled at once, a running one at its next
        trial (the task checks its flag), and its Dask future is cancelled."""
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
            state = s.scalar(select(Job.state).where(Job.id == job_id))
        fut = self.futures.get(job_id)
        if fut is not None and state == JobState.QUEUED:
            fut.cancel()  # handed to Dask but not started: Dask drops it
        self.wake()


def _failure_reason(fut: Any) -> str:
    exc = fut.exception()
    name = exc.__class__.__name__
    if name == "KilledWorker":
        return WORKER_DIED
    return f"The job's task failed: {name}: {exc}"


Work = Callable[[Callable[[str, int, int], None]], dict[str, Any]]


def run_here(db: Database, job_id: int, work: Work, *, lease: float = 30.0) -> None:
    """Run a job in this process (the retrieval jobs: the service holds their Qdrant Edge
    shards). ``work(progress)`` returns the result; ``progress(phase, done, total)`` writes the
    row at most every ``PROGRESS_EVERY`` seconds and raises :class:`JobCancelled` once the job's
    cancel flag is set. Ends the row as the training jobs' task does; its lease is renewed
    meanwhile."""
    holder = f"service {worker_name()}"
    if not _claim(db, job_id, holder, lease):
        with db.session() as s:
            _finish(s, s.get(Job, job_id), JobState.CANCELLED, error="Cancelled before it started.")
        return
    started, last = time.monotonic(), [0.0]

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY and done < total:
            return
        last[0] = now
        state = {"phase": phase, "done": done, "total": total, "elapsed": round(now - started, 2)}
        with db.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(progress=state))
            if s.scalar(select(Job.cancel_requested).where(Job.id == job_id)):
                raise JobCancelled

    def end(state: JobState, **written: Any) -> None:
        with db.session() as s:
            _finish(s, s.get(Job, job_id), state, **written)

    try:
        with heartbeat(db, job_id, holder, lease):
            result = work(progress)
    except JobCancelled:
        end(JobState.CANCELLED, error="Cancelled.")
    except TaxonomistError as exc:
        end(JobState.FAILED, error=exc.message)
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        end(JobState.FAILED, error=f"The job failed unexpectedly: {exc.__class__.__name__}: {exc}")
    else:
        end(JobState.SUCCEEDED, result=result)
