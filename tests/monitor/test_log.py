"""The prediction log: group commits from many threads, reading pages, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import update

from taxonomist.errors import InvalidParameterError
from taxonomist.monitor.log import PredictionLog, new_request_id, prediction_rows, read_log
from taxonomist.store import Database, Prediction


def rows(n: int, model: str = "m", request_id: str | None = None) -> list[dict]:
    proba = np.tile([0.7, 0.2, 0.1], (n, 1))
    return prediction_rows(
        model=model,
        version=1,
        records=[
            {"title": f"text {i}", "price": float("nan"), "n": np.int64(i), "w": np.float32("inf")}
            for i in range(n)
        ],
        labels=["a"] * n,
        proba=proba,
        classes=["a", "b", "c"],
        latency_ms=2.0 * n,
        request_id=request_id or new_request_id(),
        user_id=7,
        source="api",
    )


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def test_rows_hold_the_record_label_top_classes_and_latency() -> None:
    (row,) = rows(1, request_id="r1")
    assert row["record"] == {"title": "text 0", "price": None, "n": 0, "w": None}  # JSON-safe
    assert row["top"] == {"a": 0.7, "b": 0.2, "c": 0.1} and row["latency_ms"] == 2.0
    assert (row["request_id"], row["position"], row["source"]) == ("r1", 0, "api")


def test_concurrent_writes_share_commits_and_all_land(db: Database) -> None:
    log = PredictionLog(db)
    ids = [new_request_id() for _ in range(40)]
    barrier = threading.Barrier(8)

    def client(part: list[str]) -> None:
        barrier.wait()
        for rid in part:
            log.write(rows(3, request_id=rid))

    threads = [threading.Thread(target=client, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    got = read_log(db, "m", limit=1000)
    assert len(got) == 120 and {r["request_id"] for r in got} == set(ids)
    assert log.commits <= 40  # requests that arrived together shared a commit
    # newest first, and pages do not overlap
    first = read_log(db, "m", limit=50)
    second = read_log(db, "m", limit=50, before_id=first[-1]["id"])
    assert [r["id"] for r in first] == sorted((r["id"] for r in first), reverse=True)
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert read_log(db, "other") == []


def test_a_failed_commit_reaches_every_waiting_request(db: Database) -> None:
    log = PredictionLog(db)
    bad = rows(1)
    bad[0]["label"] = None  # NOT NULL
    with pytest.raises(Exception, match=r"(?i)null|constraint"):
        log.write(bad)
    log.write(rows(2))  # the writer goes on
    log.close()
    assert len(read_log(db, "m")) == 2


def test_old_rows_are_purged(db: Database) -> None:
    log = PredictionLog(db, retention_days=7)
    log.write(rows(3))
    log.write(rows(2, model="fresh"))
    with db.session() as s:
        s.execute(
            update(Prediction)
            .where(Prediction.model == "m")
            .values(at=datetime.now(UTC) - timedelta(days=8))
        )
    assert log.purge() == 3
    log.close()
    assert read_log(db, "m") == [] and len(read_log(db, "fresh")) == 2


def test_limits_are_checked(db: Database) -> None:
    with pytest.raises(InvalidParameterError, match="'limit' must be 1 to 10000"):
        read_log(db, "m", limit=0)


def test_feedback_is_joined_all_or_nothing_and_scored(db: Database) -> None:
    from taxonomist.errors import NotFoundError
    from taxonomist.monitor.quality import Feedback, live_quality, record_feedback

    log = PredictionLog(db)
    log.write(rows(4, request_id="r1"))  # every label "a"
    log.close()

    def classes(version: int) -> list[str]:
        return ["a", "b", "c"]

    with pytest.raises(NotFoundError, match="r9/0"):
        record_feedback(db, "m", [Feedback("r1", "a", 0), Feedback("r9", "a")], classes)
    with pytest.raises(InvalidParameterError, match="never saw: z"):
        record_feedback(db, "m", [Feedback("r1", "z", 1)], classes)
    assert live_quality(db, "m")["n"] == 0  # nothing of the refused requests was stored
    labels = ["a", "b", "a", "c"]
    done = record_feedback(db, "m", [Feedback("r1", t, i) for i, t in enumerate(labels)], classes)
    assert done["recorded"] == 4
    q = live_quality(db, "m")
    assert (q["n"], q["accuracy"]) == (4, 0.5)
    assert q["recall"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    # feedback given again replaces the earlier label
    record_feedback(db, "m", [Feedback("r1", "a", 1)], classes)
    assert live_quality(db, "m")["accuracy"] == 0.75
