"""Retraining: a challenger trained with the champion's stored config on the data the champion
saw plus new labelled rows, promoted only when a paired bootstrap says it is better.

The evaluation rows are never trained on: a share of each retrain's new rows joins the model's
*fixed holdout* (stored with every version as ``data/holdout.parquet``), and champion and
challenger are scored on that holdout plus this retrain's held-out new rows. Every attempt is
a journal entry, written before training starts and completed after (or marked failed), so the
journal and the champion agree whatever happens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from taxonomist.config import Settings
from taxonomist.data.schema import require_column
from taxonomist.errors import ConflictError, InvalidParameterError, NotFoundError
from taxonomist.models.config import TrainConfig
from taxonomist.models.metrics import METRICS, classification_metrics
from taxonomist.models.train import train
from taxonomist.monitor.log import logged_window
from taxonomist.registry import Registry
from taxonomist.store import Database, RetrainEntry
from taxonomist.store.accounts import audit

logger = logging.getLogger(__name__)
HOLDOUT_SHARE = 0.3  # of each retrain's new rows, kept out of training for evaluation
MIN_NEW_ROWS = 10
MIN_HELD_OUT = 3  # a retrain on few new rows still scores both models on unseen ones
N_BOOTSTRAP = 1000
ALPHA = 0.05
MAX_BUDGET_GROWTH = 10.0  # a time budget grows with the rows, up to this factor
TRIGGERS = ("manual", "schedule", "drift", "quality", "labels")


def journal(db: Database, name: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The retrain entries of ``name``, newest first."""
    q = (
        select(RetrainEntry)
        .where(RetrainEntry.model == name)
        .order_by(RetrainEntry.id.desc())
        .limit(limit)
    )
    with db.session() as s:
        return [_entry(e) for e in s.scalars(q)]


def latest_retrains(db: Database) -> dict[str, dict[str, Any]]:
    """The newest finished journal entry of every model."""
    with db.session() as s:
        newest = (
            select(RetrainEntry.model, func.max(RetrainEntry.id))
            .where(RetrainEntry.finished_at.is_not(None))
            .group_by(RetrainEntry.model)
        )
        ids = [i for _, i in s.execute(newest)]
        return {
            e.model: _entry(e)
            for e in s.scalars(select(RetrainEntry).where(RetrainEntry.id.in_(ids)))
        }


def _entry(e: RetrainEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "model": e.model,
        "at": e.at.isoformat(),
        "finished_at": e.finished_at.isoformat() if e.finished_at else None,
        "user_id": e.user_id,
        "trigger": e.trigger,
        "reason": e.reason,
        "status": e.status,
        "champion_version": e.champion_version,
        "challenger_version": e.challenger_version,
        **e.entry,
    }


def feedback_rows(db: Database, name: str, target: str, since: datetime | None) -> pd.DataFrame:
    """The logged records of ``name`` that have feedback, with it as ``target``."""
    records, _, labels = logged_window(db, name, since=since, limit=1_000_000)
    rows = [{**r, target: f} for r, f in zip(records, labels, strict=True) if f is not None]
    return pd.DataFrame.from_records(rows)


def paired_bootstrap(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    metric: str,
    *,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """Both models' ``metric`` on the same resamples of the evaluation rows: each score with
    its 95 % interval, the difference (challenger - champion, signed so that > 0 is better)
    and the one-sided p-value of "the challenger is not better"."""
    m = METRICS[metric]
    sign = 1.0 if m.greater_is_better else -1.0
    rng = np.random.default_rng(seed)
    n = len(y)
    a, b, d = [], [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if len(np.unique(y[idx])) < 2:
            continue  # a resample with one class has no AUC
        sa, sb = m(y[idx], champion[idx]), m(y[idx], challenger[idx])
        a.append(sa)
        b.append(sb)
        d.append(sign * (sb - sa))
    diff = np.asarray(d)

    def interval(v: list[float] | np.ndarray) -> dict[str, float]:
        lo, hi = np.quantile(v, [0.025, 0.975])
        return {"low": float(lo), "high": float(hi)}

    champ, chall = m(y, champion), m(y, challenger)
    return {
        "metric": metric,
        "n": n,
        "n_boot": len(diff),
        "champion": {"score": champ, **interval(a)},
        "challenger": {"score": chall, **interval(b)},
        "difference": {"mean": float(diff.mean()), **interval(diff)},
        "p_value": float((np.sum(diff <= 0) + 1) / (len(diff) + 1)),
    }


def _aligned_proba(model: Any, X: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """``model``'s probabilities over ``classes`` (0 for the classes it does not know)."""
    proba = np.asarray(model.predict_proba(X))
    out = np.zeros((len(X), len(classes)), dtype=float)
    position = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(model.classes):
        out[:, position[str(c)]] = proba[:, j]
    return out


def _class_report(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    report = classification_metrics(y, proba, classes)
    keep = ("n", "accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss", "per_class")
    return {k: report[k] for k in keep}


def _split(new: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to train on, rows held out): :data:`HOLDOUT_SHARE` of the rows (at least
    :data:`MIN_HELD_OUT`) drawn at random, seeded."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(new), dtype=bool)
    n_held = max(MIN_HELD_OUT, round(HOLDOUT_SHARE * len(new)))
    held[rng.choice(len(new), n_held, replace=False)] = True
    return new[~held].reset_index(drop=True), new[held].reset_index(drop=True)


def retrain(
    registry: Registry,
    db: Database,
    name: str,
    new_data: pd.DataFrame | None = None,
    *,
    trigger: str = "manual",
    reason: str = "",
    source: str = "file",
    data_name: str | None = None,
    user_id: int | None = None,
    settings: Settings | None = None,
    on_progress: Callable[[Any], None] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a challenger of ``name``'s champion on its data plus ``new_data`` (labelled rows
    with the target column; default: the logged predictions given feedback since the
    champion was registered; ``data_name``: what they are, for the journal), evaluate both on
    the same unseen rows, promote the challenger only when it is significantly better, and
    journal it all. Returns the journal entry."""
    if trigger not in TRIGGERS:
        raise InvalidParameterError(f"Unknown trigger '{trigger}'; one of {', '.join(TRIGGERS)}.")
    champion, config = retrainable(registry, name)
    champ_ref = f"{champion.name}/{champion.version}"
    trained_on = registry.table(champ_ref, "train")
    if trained_on is None:
        raise _not_retrainable(champ_ref)
    target = config.target
    if new_data is None:
        since = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
        new_data, source = feedback_rows(db, champion.name, target, since), "feedback"
    check_new_rows(new_data, target, champ_ref, source)
    new_data = _like(new_data, trained_on, target)
    fixed = registry.table(champ_ref, "holdout")
    new_train, new_held = _split(new_data, seed)
    holdout = pd.concat([fixed, new_held], ignore_index=True) if fixed is not None else new_held
    if config.time_budget is not None:  # the champion's budget was for its rows: per row
        grown = (len(trained_on) + len(new_train)) / max(len(trained_on), 1)
        budget = config.time_budget * min(MAX_BUDGET_GROWTH, max(1.0, grown))
        config = config.model_copy(update={"time_budget": round(budget, 1)})
    data = {
        "time_budget": config.time_budget,
        "source": source,
        "name": data_name or ("feedback in the log" if source == "feedback" else "a table"),
        "new_rows": len(new_data),
        "new_train_rows": len(new_train),
        "new_holdout_rows": len(new_held),
        "fixed_holdout_rows": 0 if fixed is None else len(fixed),
        "train_rows": len(trained_on) + len(new_train),
    }
    entry_id = _start(db, champion, trigger, reason, user_id, data)
    try:
        result = train(
            pd.concat([trained_on, new_train], ignore_index=True),
            config,
            on_progress=on_progress,
            settings=settings,
        )
        result.holdout = holdout
        champ_model = registry.load(champ_ref)
        y_true = holdout[target].astype(str).to_numpy()
        classes = sorted({*map(str, champ_model.classes), *map(str, result.model.classes)})
        unknown = sorted(set(y_true) - set(classes))
        keep = ~np.isin(y_true, unknown)  # a class neither model knows cannot be scored
        X, y_true = holdout[keep], y_true[keep]
        y = np.searchsorted(classes, y_true)
        p_champ = _aligned_proba(champ_model, X, classes)
        p_chall = _aligned_proba(result.model, X, classes)
        evaluation = paired_bootstrap(y, p_champ, p_chall, champ_model.metric, seed=seed)
        better = evaluation["p_value"] < ALPHA and evaluation["difference"]["mean"] > 0
        reg = result.register(
            registry,
            champion.name,
            keep_champion=True,
            tags={"challenger_of": str(champion.version), "retrain": str(entry_id)},
        )
        with registry.champion_lock(champion.name):  # the champion we beat is still it?
            now = int(registry.resolve(champion.name).version)
            decision = _decision(evaluation, better, reg.version, int(champion.version))
            if better and now != int(champion.version):
                better = False
                decision = (
                    f"challenger version {reg.version} beat version {champion.version}, but "
                    f"version {now} became champion meanwhile; champion version {now} kept "
                    "(retrain again to compare with it)"
                )
            if better:
                registry.set_alias(f"{champion.name}/{reg.version}")
        finished = {
            "data": data,
            "evaluation": evaluation,
            "decision": decision,
            "reports": {
                "champion": _class_report(y, p_champ, classes),
                "challenger": _class_report(y, p_chall, classes),
            },
        }
        status = "promoted" if better else "kept"
        return _finish(db, entry_id, status, reg.version, finished, user_id)
    except BaseException as exc:
        error = str(exc) or exc.__class__.__name__  # a cancelled job's exception is silent
        _finish(db, entry_id, "failed", None, {"data": data, "error": error}, user_id)
        raise


def retrainable(registry: Registry, name: str) -> tuple[Any, TrainConfig]:
    """The champion of ``name`` and the config it was trained with (a 409 for a version
    registered before configs were stored)."""
    champion = registry.resolve(name)
    ref = f"{champion.name}/{champion.version}"
    stored = registry.config(ref)
    if stored is None:
        raise _not_retrainable(ref)
    return champion, TrainConfig.parse(stored).model_copy(update={"data": None, "promote": False})


def _not_retrainable(ref: str) -> ConflictError:
    return ConflictError(
        f"{ref} cannot be retrained: it was registered before Taxonomist stored the config "
        "and data of each version. Train it again with 'taxonomist train'.",
        details={"model": ref},
    )


def check_new_rows(new: pd.DataFrame, target: str, ref: str, source: str) -> None:
    """New labelled rows a retrain can use, or a 4xx that says what is wrong with them."""
    if source == "feedback" and new.empty:
        raise InvalidParameterError(
            f"No logged prediction of {ref} has feedback since it was registered: give true "
            "labels first (taxonomist monitor feedback), or retrain on a labelled file.",
            details={"model": ref},
        )
    require_column(target, [str(c) for c in new.columns], what="target")
    labelled = new[target].notna() & (new[target].astype(str).str.strip() != "")
    if int(labelled.sum()) < MIN_NEW_ROWS:
        raise InvalidParameterError(
            f"A retrain needs at least {MIN_NEW_ROWS} new labelled rows (a target value in "
            f"'{target}'); got {int(labelled.sum())}.",
            details={"labelled_rows": int(labelled.sum())},
        )


def _like(new: pd.DataFrame, trained_on: pd.DataFrame, target: str) -> pd.DataFrame:
    """The labelled rows of ``new`` with the training table's columns (others dropped, absent
    ones missing) and its target type (labels given as text for a numeric target)."""
    new = new[new[target].notna() & (new[target].astype(str).str.strip() != "")]
    new = new.reindex(columns=trained_on.columns).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(trained_on[target]):
        labels = pd.to_numeric(new[target], errors="coerce")
        if labels.notna().all():
            new[target] = labels.astype(trained_on[target].dtype)
    return new


def _decision(evaluation: dict[str, Any], better: bool, challenger: int, champion: int) -> str:
    ch, cc = evaluation["champion"], evaluation["challenger"]
    scores = (
        f"{evaluation['metric']} {cc['score']:.4f} [{cc['low']:.4f}, {cc['high']:.4f}] vs "
        f"{ch['score']:.4f} [{ch['low']:.4f}, {ch['high']:.4f}] on {evaluation['n']} unseen "
        f"rows, paired bootstrap p = {evaluation['p_value']:.3f}"
    )
    if better:
        return f"challenger version {challenger} promoted: better than version {champion}, {scores}"
    return f"champion version {champion} kept: the challenger is not better, {scores}"


def _start(
    db: Database, champion: Any, trigger: str, reason: str, user_id: int | None, data: dict
) -> int:
    with db.session() as s:
        row = RetrainEntry(
            model=champion.name,
            user_id=user_id,
            trigger=trigger,
            reason=reason or {"manual": "by hand"}.get(trigger, trigger),
            status="running",
            champion_version=int(champion.version),
            entry={"data": data},
        )
        s.add(row)
        s.flush()
        audit(s, user_id, "retrain_started", "model", champion.name, {"trigger": trigger})
        return row.id


def _finish(
    db: Database,
    entry_id: int,
    status: str,
    challenger: int | None,
    entry: dict[str, Any],
    user_id: int | None,
) -> dict[str, Any]:
    with db.session() as s:
        row = s.get(RetrainEntry, entry_id)
        if row is None:
            raise NotFoundError(f"Journal entry {entry_id} vanished.")
        row.status, row.challenger_version = status, challenger
        row.finished_at, row.entry = datetime.now(UTC), entry
        details = {"status": status, "challenger": challenger, "entry": entry_id}
        audit(s, user_id, f"retrain_{status}", "model", row.model, details)
        if status == "promoted":
            audit(s, user_id, "promote", "model", row.model, details)
        s.flush()
        out = _entry(row)
    logger.info("retrain of %s: %s", out["model"], status)
    return out
