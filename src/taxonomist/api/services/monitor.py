"""Monitoring as the service shows it, for a model the user may see: its prediction log, the
true labels given later, the live quality they measure, drift reports, retrain jobs and their
journal, and the retraining policies the service acts on."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
from fastapi import UploadFile
from sqlalchemy import select

from taxonomist.api.schemas import (
    DriftReportOut,
    DriftSummary,
    FeedbackItem,
    FeedbackRecorded,
    JobOut,
    JournalEntry,
    LiveQuality,
    PolicyOut,
    PredictionsPage,
)
from taxonomist.api.services.jobs import check_job_cap
from taxonomist.api.services.state import Principal, Services
from taxonomist.api.services.uploads import uploaded_table
from taxonomist.errors import NotFoundError, TaxonomistError
from taxonomist.monitor.log import read_log
from taxonomist.monitor.policy import (
    Policy,
    claim_due_policies,
    delete_policy,
    drift_check_due,
    due,
    get_policy,
    set_policy,
)
from taxonomist.monitor.quality import Feedback, feedback_table, live_quality, record_feedback
from taxonomist.monitor.reports import (
    DEFAULT_WINDOW_ROWS,
    check_drift,
    get_report,
    list_reports,
    report_html,
)
from taxonomist.monitor.retrain import check_new_rows, feedback_rows, journal, retrainable
from taxonomist.store import UNFINISHED, Job, ModelOwner
from taxonomist.store.accounts import audit
from taxonomist.store.files import retrain_files

logger = logging.getLogger(__name__)


def predictions(
    svc: Services, name: str, *, limit: int, before_id: int | None, version: int | None
) -> PredictionsPage:
    """One page of ``name``'s logged predictions, newest first."""
    rows = read_log(svc.db, name, limit=limit, before_id=before_id, version=version)
    next_id = rows[-1]["id"] if len(rows) == limit else None
    return PredictionsPage.model_validate(
        {"data": rows, "count": len(rows), "next_before_id": next_id}
    )


def feedback(
    svc: Services, user: Principal, name: str, items: Sequence[FeedbackItem]
) -> FeedbackRecorded:
    """Record true labels for logged predictions of ``name`` (all or none), audited."""
    return _record(
        svc, user, name, [Feedback(i.request_id, str(i.label), i.position) for i in items]
    )


def _record(svc: Services, user: Principal, name: str, items: list[Feedback]) -> FeedbackRecorded:
    out = record_feedback(
        svc.db, name, items, lambda version: svc.registry.load(f"{name}/{version}").classes
    )
    with svc.db.session() as s:
        audit(s, user.id, "feedback", "model", name, {"recorded": out["recorded"]})
    return FeedbackRecorded.model_validate(out)


def feedback_file(svc: Services, user: Principal, name: str, file: UploadFile) -> FeedbackRecorded:
    """:func:`feedback` from a table with request_id, label and (optional) position columns."""
    items = feedback_table(uploaded_table(svc, file))
    return _record(svc, user, name, items)


def quality(svc: Services, name: str, *, days: float | None, version: int | None) -> LiveQuality:
    since = None if days is None else datetime.now(UTC) - timedelta(days=days)
    return LiveQuality.model_validate(live_quality(svc.db, name, since=since, version=version))


# -- drift ----------------------------------------------------------------------------------
def drift(
    svc: Services,
    user: Principal,
    name: str,
    *,
    data: pd.DataFrame | None = None,
    version: int | None = None,
    days: float | None = None,
    limit: int = DEFAULT_WINDOW_ROWS,
) -> DriftReportOut:
    """Compute and store a drift report of ``name`` (its logged window, or ``data``)."""
    out = check_drift(
        svc.registry,
        svc.db,
        name,
        data=data,
        version=version,
        days=days,
        limit=limit,
        user_id=user.id,
        seed=svc.settings.seed,
    )
    return DriftReportOut.model_validate(out)


def drift_file(
    svc: Services, user: Principal, name: str, file: UploadFile, version: int | None
) -> DriftReportOut:
    return drift(svc, user, name, data=uploaded_table(svc, file), version=version)


def drift_reports(svc: Services, name: str, limit: int) -> list[DriftSummary]:
    return [DriftSummary.model_validate(r) for r in list_reports(svc.db, name, limit=limit)]


def drift_report(svc: Services, name: str, report_id: int) -> DriftReportOut:
    return DriftReportOut.model_validate(get_report(svc.db, name, report_id))


def drift_html(svc: Services, name: str, report_id: int) -> str:
    return report_html(get_report(svc.db, name, report_id))


# -- retraining -----------------------------------------------------------------------------
def retrain(
    svc: Services, user: Principal, name: str, file: UploadFile | None, reason: str
) -> JobOut:
    """Queue a retrain job of ``name`` on a labelled file (checked now: a file without the
    target or labels is a 4xx, not a failed job) or on the feedback in the log."""
    svc.engine.check()
    champion, config = retrainable(svc.registry, name)
    ref = f"{champion.name}/{champion.version}"
    path = None
    if file is not None:
        data = uploaded_table(svc, file)
        check_new_rows(data, config.target, ref, "file")
        files = retrain_files(svc.settings)
        files.folder.mkdir(parents=True, exist_ok=True)
        local = files.folder / f"{uuid.uuid4().hex}.parquet"
        data.to_parquet(local, index=False)
        path = files.publish(local)  # a worker on another machine reads it from the bucket
    else:
        since = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
        rows = feedback_rows(svc.db, name, config.target, since)
        check_new_rows(rows, config.target, ref, "feedback")
    return queue_retrain(
        svc,
        user.id,
        name,
        path,
        trigger="manual",
        reason=reason or "by hand",
        data_name=None if file is None else file.filename,
    )


def queue_retrain(
    svc: Services,
    user_id: int | None,
    name: str,
    data_path: str | None,
    *,
    trigger: str,
    reason: str,
    data_name: str | None = None,
) -> JobOut:
    """A queued retrain job (``data_path``: the new rows; ``None``: the log's feedback)."""
    config = {
        "data_name": data_name,
        "model_name": name,
        "data_path": data_path,
        "source": "feedback" if data_path is None else "file",
        "trigger": trigger,
        "reason": reason,
        "owner_id": user_id,
    }
    with svc.db.session() as s:
        check_job_cap(s, svc, user_id)
        owner = s.get(ModelOwner, name)
        job = Job(
            owner_id=user_id if user_id is not None else (owner.owner_id if owner else None),
            kind="retrain",
            config=config,
            progress={},
            logs=[],
        )
        s.add(job)
        s.flush()
        audit(s, user_id, "create_retrain_job", "job", str(job.id), config)
        out = JobOut.model_validate(job)
    svc.engine.wake()
    return out


def retrain_journal(svc: Services, name: str, limit: int) -> list[JournalEntry]:
    return [JournalEntry.model_validate(e) for e in journal(svc.db, name, limit=limit)]


# -- policies -------------------------------------------------------------------------------
def policy(svc: Services, name: str) -> PolicyOut:
    found = get_policy(svc.db, name)
    if found is None:
        raise NotFoundError(
            f"{name} has no retraining policy: set one with PUT /api/v1/monitor/{name}/policy "
            f"(or 'taxonomist monitor policy {name} --new-labels 500').",
            details={"model": name},
        )
    return PolicyOut.model_validate(found)


def put_policy(svc: Services, user: Principal, name: str, body: Policy) -> PolicyOut:
    return PolicyOut.model_validate(set_policy(svc.db, name, body, user.id))


def remove_policy(svc: Services, user: Principal, name: str) -> None:
    if not delete_policy(svc.db, name, user.id):
        policy(svc, name)  # the 404 that says how to set one


def run_policies(svc: Services) -> list[JobOut]:
    """Act on the policies due a check: refresh the drift report when the policy watches
    drift, and queue a retrain when a trigger fires (and labelled rows exist to learn from).
    Returns the jobs queued."""
    queued = []
    for name, pol in claim_due_policies(svc.db, svc.settings.policy_interval):
        try:
            queued += _apply_policy(svc, name, pol)
        except Exception:  # one model's trouble must not stop the others
            logger.exception("retraining policy of %s", name)
    return queued


def _apply_policy(svc: Services, name: str, pol: Policy) -> list[JobOut]:
    champion, config = retrainable(svc.registry, name)
    version = int(champion.version)
    if drift_check_due(svc.db, name, pol, version):
        try:
            check_drift(svc.registry, svc.db, name, version=version, seed=svc.settings.seed)
        except TaxonomistError as exc:  # e.g. too few logged predictions yet
            logger.info("policy of %s: no drift report (%s)", name, exc.message)
    created = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
    fired = due(svc.db, name, pol, champion_version=version, champion_created=created)
    if fired is None or _retrain_running(svc, name):
        return []
    trigger, reason = fired
    if feedback_rows(svc.db, name, config.target, created).empty:
        logger.info("policy of %s fired (%s) but no labelled rows to retrain on", name, reason)
        return []
    return [queue_retrain(svc, None, name, None, trigger=trigger, reason=reason)]


def _retrain_running(svc: Services, name: str) -> bool:
    with svc.db.session() as s:
        jobs = s.scalars(
            select(Job).where(
                Job.kind == "retrain",
                Job.state.in_(UNFINISHED),
            )
        )
        return any(j.config.get("model_name") == name for j in jobs)


class PolicyLoop:
    """A thread of the service that runs :func:`run_policies` every
    ``settings.policy_interval`` seconds (0: never)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.svc.settings.policy_interval > 0:
            self._thread = threading.Thread(
                target=self._run, name="taxonomist-policies", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.svc.settings.policy_interval):
            try:
                run_policies(self.svc)
            except Exception:  # a database hiccup must not end the loop
                logger.exception("retraining policies")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
