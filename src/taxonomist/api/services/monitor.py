"""Monitoring as the service shows it, for a model the user may see: its prediction log, the
true labels given later, and the live quality they measure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fastapi import UploadFile

from taxonomist.api.schemas import FeedbackItem, FeedbackRecorded, LiveQuality, PredictionsPage
from taxonomist.api.services.state import Principal, Services
from taxonomist.api.services.uploads import uploaded_table
from taxonomist.monitor.log import read_log
from taxonomist.monitor.quality import Feedback, feedback_table, live_quality, record_feedback
from taxonomist.store.accounts import audit


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
    items = feedback_table(uploaded_table(svc.settings, file))
    return _record(svc, user, name, items)


def quality(svc: Services, name: str, *, days: float | None, version: int | None) -> LiveQuality:
    since = None if days is None else datetime.now(UTC) - timedelta(days=days)
    return LiveQuality.model_validate(live_quality(svc.db, name, since=since, version=version))
