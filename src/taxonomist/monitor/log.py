"""The prediction log: every prediction, appended to the metadata database in batches.

A writer thread commits what the request threads queued in one transaction (group commit) and
wakes them: a request returns once its rows are committed, so after ``kill -9`` of the service
every prediction whose response was sent is in the log, while concurrent requests share one
commit. Why the database rather than JSON files: feedback joins on request ids, the API pages by
id, and several service processes (or a PostgreSQL cluster) share one log without merging files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from taxonomist.errors import InvalidParameterError
from taxonomist.store import Database, Prediction

logger = logging.getLogger(__name__)
TOP_PROBABILITIES = 3
LABEL_CHARS = 200  # the label column's width
MAX_BATCH = 2048
PURGE_EVERY = 3600.0  # seconds between retention sweeps


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _Batch:
    rows: list[dict[str, Any]]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def prediction_rows(
    *,
    model: str,
    version: int,
    records: Sequence[dict[str, Any]],
    labels: Sequence[Any],
    proba: Any,
    classes: Sequence[Any],
    latency_ms: float,
    request_id: str,
    user_id: int | None,
    source: str,
) -> list[dict[str, Any]]:
    """The log rows of one prediction call: one per record, with its top probabilities."""
    import numpy as np

    now = datetime.now(UTC)
    names = [str(c) for c in classes]
    k = min(TOP_PROBABILITIES, len(names))
    top = np.argsort(-np.asarray(proba), axis=1)[:, :k]
    per_record = latency_ms / max(len(records), 1)
    return [
        {
            "request_id": request_id,
            "position": i,
            "model": model,
            "version": version,
            "at": now,
            "user_id": user_id,
            "source": source,
            "record": _jsonable_record(record),
            "label": str(label)[:LABEL_CHARS],
            "top": {names[j]: round(float(proba[i][j]), 6) for j in top[i]},
            "latency_ms": round(per_record, 4),
        }
        for i, (record, label) in enumerate(zip(records, labels, strict=True))
    ]


def frame_rows(
    model: Any,
    table: Any,
    predicted: Any,
    *,
    name: str,
    version: int,
    latency_ms: float,
    request_id: str,
    user_id: int | None,
    source: str,
) -> list[dict[str, Any]]:
    """The log rows of ``model.predict_frame(table)`` (``predicted``): each row's feature
    columns, its prediction and its ``proba_<class>`` columns."""
    features = [c for c in model.feature_columns if c in table.columns]
    return prediction_rows(
        model=name,
        version=version,
        records=table[features].to_dict(orient="records"),
        labels=predicted["prediction"].tolist(),
        proba=predicted[[f"proba_{c}" for c in model.classes]].to_numpy(),
        classes=model.classes,
        latency_ms=latency_ms,
        request_id=request_id,
        user_id=user_id,
        source=source,
    )


def _jsonable_record(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, bytes | bytearray) or (isinstance(v, str) and v.startswith("data:")):
            raw = v.encode() if isinstance(v, str) else bytes(v)  # an image: its digest only
            out[str(k)] = f"<image sha1:{hashlib.sha1(raw).hexdigest()[:16]}, {len(raw)} bytes>"
        elif v is None or isinstance(v, str | bool | int):
            out[str(k)] = v
        elif isinstance(v, float):
            out[str(k)] = v if math.isfinite(v) else None  # NaN and inf are no JSON
        elif hasattr(v, "item"):  # numpy scalars
            item = v.item()
            out[str(k)] = None if isinstance(item, float) and not math.isfinite(item) else item
        else:
            out[str(k)] = str(v)
    return out


class PredictionLog:
    """Appends prediction rows from many threads; :meth:`write` returns once they are
    committed. ``retention_days`` old rows are deleted once an hour by the writer."""

    def __init__(self, db: Database, *, retention_days: float = 30.0) -> None:
        self.db, self.retention_days = db, retention_days
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_purge = 0.0
        self._conn: Connection | None = None
        self._insert = insert(Prediction)
        self.commits = 0  # transactions written (tests and the benchmark read it)

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taxonomist-prediction-log", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def write(self, rows: list[dict[str, Any]], timeout: float = 30.0) -> None:
        """Queue ``rows`` and wait until they are committed (raises what the commit raised)."""
        if not rows:
            return
        self.start()
        batch = _Batch(rows)
        self._queue.put(batch)
        if not batch.done.wait(timeout):
            raise TimeoutError(f"the prediction log did not commit within {timeout} s")
        if batch.error is not None:
            raise batch.error

    # -- the writer -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._drop_connection()
                return
            batches, stop = [first], False
            count = len(first.rows)
            while count < MAX_BATCH:  # everything queued meanwhile joins this commit
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batches.append(nxt)
                count += len(nxt.rows)
            self._commit(batches)
            if stop:
                self._drop_connection()
                return
            self._maybe_purge()

    def _commit(self, batches: list[_Batch]) -> None:
        # Core on one connection the writer keeps: no ORM session or pool checkout per batch
        # (a third of a single record's logging cost).
        try:
            if self._conn is None:
                self._conn = self.db.engine.connect()
            with self._conn.begin():
                self._conn.execute(self._insert, [r for b in batches for r in b.rows])
            self.commits += 1
        except BaseException as exc:  # every waiting request gets the error
            n = sum(len(b.rows) for b in batches)
            logger.exception("prediction log: %d rows not written", n)
            for b in batches:
                b.error = exc
            self._drop_connection()
        for b in batches:
            b.done.set()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing more to do
                self._conn.close()
            self._conn = None

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = now
        try:
            self.purge()
        except Exception:  # a failed sweep is tried again in an hour
            logger.exception("prediction log: retention sweep failed")

    def purge(self) -> int:
        """Delete rows older than ``retention_days``; how many went."""
        cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
        with self.db.session() as s:
            result = s.execute(delete(Prediction).where(Prediction.at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def read_log(
    db: Database,
    model: str,
    *,
    limit: int = 100,
    before_id: int | None = None,
    version: int | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """The newest logged predictions of ``model`` first (``before_id``: the page after)."""
    if not 1 <= limit <= 10_000:
        raise InvalidParameterError(f"'limit' must be 1 to 10000; got {limit}.")
    q = select(Prediction).where(Prediction.model == model).order_by(Prediction.id.desc())
    if before_id is not None:
        q = q.where(Prediction.id < before_id)
    if version is not None:
        q = q.where(Prediction.version == version)
    if since is not None:
        q = q.where(Prediction.at >= since)
    with db.session() as s:
        return [_row(p) for p in s.scalars(q.limit(limit))]


def _row(p: Prediction) -> dict[str, Any]:
    return {
        "id": p.id,
        "request_id": p.request_id,
        "position": p.position,
        "model": p.model,
        "version": p.version,
        "at": p.at.isoformat(),
        "user_id": p.user_id,
        "source": p.source,
        "record": p.record,
        "label": p.label,
        "top": p.top,
        "latency_ms": p.latency_ms,
        "feedback": p.feedback,
    }


def logged_window(
    db: Database,
    model: str,
    *,
    version: int | None = None,
    since: datetime | None = None,
    limit: int = 100_000,
) -> tuple[list[dict[str, Any]], list[str], list[str | None]]:
    """The newest ``limit`` logged records of ``model`` (since ``since``), oldest first: the
    records, the labels predicted and the feedback given (``None`` where none was)."""
    q = (
        select(Prediction.record, Prediction.label, Prediction.feedback)
        .where(Prediction.model == model)
        .order_by(Prediction.id.desc())
        .limit(limit)
    )
    if version is not None:
        q = q.where(Prediction.version == version)
    if since is not None:
        q = q.where(Prediction.at >= since)
    with db.engine.connect() as conn:
        rows = conn.execute(q).all()[::-1]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
