"""Feedback (the true labels of logged predictions, arriving later) and the live quality
computed from the predictions that have it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_, update

from taxonomist.errors import InvalidParameterError, NotFoundError
from taxonomist.store import Database, Prediction

MAX_FEEDBACK = 100_000


@dataclass(frozen=True)
class Feedback:
    """The true label of the record at ``position`` of request ``request_id``."""

    request_id: str
    label: str
    position: int = 0


def feedback_table(table: Any) -> list[Feedback]:
    """The feedback rows of a table with ``request_id``, ``label`` and (optional) ``position``
    columns."""
    import pandas as pd

    from taxonomist.data.schema import require_column

    columns = [str(c) for c in table.columns]
    for needed in ("request_id", "label"):
        require_column(needed, columns, what="feedback column")
    positions = table["position"] if "position" in columns else pd.Series(0, index=table.index)
    return [
        Feedback(str(r), str(label), int(p))
        for r, p, label in zip(
            table["request_id"], positions.fillna(0), table["label"], strict=True
        )
    ]


def record_feedback(
    db: Database,
    model: str,
    items: Sequence[Feedback],
    classes_of: Callable[[int], Sequence[Any]],
) -> dict[str, Any]:
    """Join ``items`` to the log of ``model``: all of them or none (unknown request ids, or a
    label the version never saw, are refused with what to fix). ``classes_of(version)`` gives
    a version's classes. Feedback given again replaces the earlier one."""
    if not items:
        raise InvalidParameterError("No feedback to record: send at least one label.")
    if len(items) > MAX_FEEDBACK:
        raise InvalidParameterError(
            f"{len(items)} labels in one request; the limit is {MAX_FEEDBACK}: split them."
        )
    keys = {(f.request_id, f.position) for f in items}
    with db.session() as s:
        found: dict[tuple[str, int], tuple[int, int]] = {}
        pairs = sorted(keys)
        for start in range(0, len(pairs), 500):
            chunk = pairs[start : start + 500]
            rows = s.execute(
                select(
                    Prediction.request_id, Prediction.position, Prediction.id, Prediction.version
                )
                .where(Prediction.model == model)
                .where(tuple_(Prediction.request_id, Prediction.position).in_(chunk))
            )
            for rid, pos, pid, version in rows:
                found[(rid, pos)] = (pid, version)
        unknown = sorted(keys - set(found))
        if unknown:
            shown = ", ".join(f"{r}/{p}" for r, p in unknown[:5])
            raise NotFoundError(
                f"{len(unknown)} of the {len(keys)} predictions are not in the log of '{model}': "
                f"{shown}{' ...' if len(unknown) > 5 else ''}. Give the request_id (and the "
                "record's position in its request) that the prediction answered with.",
                details={"unknown": [f"{r}/{p}" for r, p in unknown[:100]]},
            )
        classes: dict[int, set[str]] = {}
        strange: set[str] = set()
        for f in items:
            version = found[(f.request_id, f.position)][1]
            if version not in classes:
                classes[version] = {str(c) for c in classes_of(version)}
            if str(f.label) not in classes[version]:
                strange.add(str(f.label))
        if strange:
            known = sorted(set().union(*classes.values()))
            raise InvalidParameterError(
                f"Label(s) the model never saw: {', '.join(sorted(strange)[:10])}. Its classes: "
                f"{', '.join(known[:30])}. Retrain with these labels to teach it new classes.",
                details={"unknown_labels": sorted(strange)[:100]},
            )
        now = datetime.now(UTC)
        s.execute(
            update(Prediction),
            [
                {
                    "id": found[(f.request_id, f.position)][0],
                    "feedback": str(f.label),
                    "feedback_at": now,
                }
                for f in items
            ],
        )
    return {"model": model, "recorded": len(keys)}


def live_quality(
    db: Database, model: str, *, since: datetime | None = None, version: int | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class recall of ``model``'s logged predictions that have
    feedback (``since``: only those predicted since then)."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    q = select(Prediction.label, Prediction.feedback).where(
        Prediction.model == model, Prediction.feedback.is_not(None)
    )
    if since is not None:
        q = q.where(Prediction.at >= since)
    if version is not None:
        q = q.where(Prediction.version == version)
    with db.session() as s:
        pairs = s.execute(q).all()
    out: dict[str, Any] = {"model": model, "n": len(pairs), "since": since, "version": version}
    if not pairs:
        return out | {"accuracy": None, "f1_macro": None, "recall": {}}
    predicted = [str(p) for p, _ in pairs]
    truth = [str(t) for _, t in pairs]
    labels = sorted(set(truth))
    recall = recall_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return out | {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1_macro": float(
            f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "recall": {c: float(r) for c, r in zip(labels, recall, strict=True)},
    }


def models_with_feedback(db: Database, since: datetime | None = None) -> list[str]:
    """The models with feedback on predictions made since ``since``."""
    q = select(Prediction.model).where(Prediction.feedback.is_not(None)).distinct()
    if since is not None:
        q = q.where(Prediction.at >= since)
    with db.session() as s:
        return sorted(s.scalars(q))
