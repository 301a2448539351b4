"""Retraining policies: when a model retrains by itself.

A policy names its triggers (a drift verdict, live quality below a threshold, a number of new
labels, a schedule); :func:`due` says whether one fires now and why. The service checks every
policy periodically, claiming each in the database first so that one process of many acts on
it, and queues a retrain job; the retrain still promotes only a challenger that beats the
champion.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select, update

from taxonomist.monitor.quality import live_quality
from taxonomist.store import Database, DriftReport, MonitorPolicy, Prediction, RetrainEntry


class Policy(BaseModel):
    """When to retrain a model (any trigger that fires starts a retrain)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Off: the policy is kept but not acted on.")
    drift: bool = Field(
        default=False,
        description="Retrain when a drift report of the champion says 'drift' (the service "
        "checks the logged window every `drift_every_hours`).",
    )
    drift_every_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    quality_below: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Retrain when live macro-F1 (predictions with feedback over "
        "`window_days`, at least 30) is below this.",
    )
    new_labels: int | None = Field(
        default=None, ge=10, description="Retrain once this many labels arrived since."
    )
    every_days: float | None = Field(
        default=None, gt=0, le=3650, description="Retrain on this schedule (days)."
    )
    window_days: float = Field(default=7.0, gt=0, le=3650)
    min_hours_between: float = Field(
        default=1.0, ge=0, le=24 * 365, description="No retrain sooner than this after one."
    )


MIN_QUALITY_ROWS = 30


def get_policy(db: Database, name: str) -> dict[str, Any] | None:
    with db.session() as s:
        row = s.get(MonitorPolicy, name)
        return None if row is None else _out(row)


def _out(row: MonitorPolicy) -> dict[str, Any]:
    return {
        "model": row.model,
        "policy": Policy.model_validate(row.policy).model_dump(),
        "updated_at": row.updated_at.isoformat(),
        "last_checked": row.last_checked.isoformat() if row.last_checked else None,
    }


def set_policy(db: Database, name: str, policy: Policy, user_id: int | None) -> dict[str, Any]:
    from taxonomist.store.accounts import audit

    with db.session() as s:
        row = s.get(MonitorPolicy, name)
        if row is None:
            row = MonitorPolicy(model=name, policy={})
            s.add(row)
        row.policy, row.updated_by = policy.model_dump(), user_id
        row.updated_at = datetime.now(UTC)
        audit(s, user_id, "set_policy", "model", name, policy.model_dump())
        s.flush()
        return _out(row)


def delete_policy(db: Database, name: str, user_id: int | None) -> bool:
    from taxonomist.store.accounts import audit

    with db.session() as s:
        row = s.get(MonitorPolicy, name)
        if row is None:
            return False
        s.delete(row)
        audit(s, user_id, "delete_policy", "model", name)
        return True


def claim_due_policies(db: Database, every: float) -> list[tuple[str, Policy]]:
    """The enabled policies not checked in the last ``every`` seconds, each marked checked
    now by this process (an atomic update: another process skips the ones it lost)."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=every)
    with db.session() as s:
        rows = s.execute(select(MonitorPolicy.model, MonitorPolicy.policy)).all()
    claimed = []
    for name, data in rows:
        policy = Policy.model_validate(data)
        if not policy.enabled:
            continue
        with db.session() as s:
            won = s.execute(  # type: ignore[attr-defined]
                update(MonitorPolicy)
                .where(
                    MonitorPolicy.model == name,
                    or_(MonitorPolicy.last_checked.is_(None), MonitorPolicy.last_checked < cutoff),
                )
                .values(last_checked=now)
            ).rowcount
        if won:
            claimed.append((name, policy))
    return claimed


def last_retrain(db: Database, name: str) -> datetime | None:
    with db.session() as s:
        return s.scalar(select(func.max(RetrainEntry.at)).where(RetrainEntry.model == name))


def due(
    db: Database,
    name: str,
    policy: Policy,
    *,
    champion_version: int,
    champion_created: datetime,
    now: datetime | None = None,
) -> tuple[str, str] | None:
    """``(trigger, reason)`` of the first trigger of ``policy`` that fires now, else None."""
    now = now or datetime.now(UTC)
    previous = last_retrain(db, name)
    since = max(champion_created, previous) if previous else champion_created
    if previous and now - previous < timedelta(hours=policy.min_hours_between):
        return None
    if policy.drift:
        with db.session() as s:
            report = s.scalars(
                select(DriftReport)
                .where(DriftReport.model == name, DriftReport.version == champion_version)
                .order_by(DriftReport.id.desc())
                .limit(1)
            ).first()
        if report is not None and report.verdict == "drift" and report.at > since:
            reasons = "; ".join(report.report.get("reasons", [])[:2])
            return "drift", f"drift report {report.id} says drift: {reasons}"
    if policy.quality_below is not None:
        q = live_quality(db, name, since=now - timedelta(days=policy.window_days))
        if q["n"] >= MIN_QUALITY_ROWS and q["f1_macro"] < policy.quality_below:
            return "quality", (
                f"live macro-F1 {q['f1_macro']:.3f} on {q['n']} predictions with feedback is "
                f"below {policy.quality_below}"
            )
    if policy.new_labels is not None:
        with db.session() as s:
            n = s.scalar(
                select(func.count()).where(
                    Prediction.model == name,
                    Prediction.feedback.is_not(None),
                    Prediction.feedback_at > since,
                )
            )
        if n and n >= policy.new_labels:
            return "labels", f"{n} new labels since {since.isoformat()[:19]}"
    if policy.every_days is not None and now - since >= timedelta(days=policy.every_days):
        return "schedule", f"scheduled every {policy.every_days:g} days"
    return None


def drift_check_due(db: Database, name: str, policy: Policy, version: int) -> bool:
    """Whether the policy wants a fresh drift report of the champion now."""
    if not policy.drift:
        return False
    with db.session() as s:
        newest = s.scalar(
            select(func.max(DriftReport.at)).where(
                DriftReport.model == name, DriftReport.version == version
            )
        )
    return newest is None or datetime.now(UTC) - newest >= timedelta(hours=policy.drift_every_hours)
