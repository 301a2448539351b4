"""One conformance suite for both storage backends: Qdrant Edge (in-process, the default) and
a Qdrant server through qdrant-client (its local mode stands in for the server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from taxonomist.errors import ConflictError, NotFoundError
from taxonomist.retrieval import (
    EdgeStore,
    RetrievalModel,
    RetrievalParams,
    ServerStore,
    Store,
    build_model,
    load_qa,
)
from tests.conftest import shared


def _server(path: Path) -> ServerStore:
    from qdrant_client import QdrantClient

    return ServerStore(QdrantClient(path=str(path)))


@pytest.fixture(params=["edge", "server"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the backend on one folder; calling it again reopens (a restart)."""
    opened: list[Store] = []

    def open_store() -> Store:
        for old in opened:  # one process per folder: close before reopening
            old.shutdown()
        store = EdgeStore(tmp_path) if request.param == "edge" else _server(tmp_path)
        opened.append(store)
        return store

    yield open_store
    for old in opened:
        old.shutdown()


@pytest.fixture(scope="module")
def small():
    """60 SQuAD passages and their questions."""
    ds = load_qa(shared("squad/squad_v2_part1.json"))
    keep = ds.passages["passage_id"].head(60)
    ds.passages = ds.passages[ds.passages["passage_id"].isin(keep)].reset_index(drop=True)
    ds.questions = ds.questions[ds.questions["passage_id"].isin(keep)].reset_index(drop=True)
    return ds


def test_collections_points_queries_and_metadata(opener) -> None:
    store = opener()
    store.create("c1", dense_size=3, sparse=True)
    payloads = [{"passage_id": f"p{i % 3}", "context": f"text {i}"} for i in range(6)]
    dense = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]], float)
    sparse = [([i, 100], [1.0, 0.5]) for i in range(6)]
    store.upsert("c1", range(6), payloads, dense=dense, sparse=sparse)
    store.finish("c1")
    [near, terms, empty] = store.query(
        "c1",
        [("dense", [1.0, 0.0, 0.0], 2), ("bm25", ([3, 100], [1.0, 1.0]), 3), ("bm25", ([], []), 3)],
    )
    assert near[0] == ("p0", pytest.approx(1.0, abs=1e-5)) and len(near) == 2
    assert terms[0] == ("p0", pytest.approx(1.5)) and len(terms) == 3  # point 3 is passage p0
    assert empty == []
    [only] = store.query("c1", [("dense", [1.0, 0.0, 0.0], 10)], passage_ids=["p1", "p2"])
    assert {pid for pid, _ in only} == {"p1", "p2"} and len(only) == 4
    fetched = store.fetch("c1", ["p2"])
    assert sorted(p["context"] for p in fetched) == ["text 2", "text 5"]
    assert "c1" in store.collections()
    store.write_meta("m1", {"id": "m1", "collections": {"passages": "c1"}})
    store.write_meta("m1", {"id": "m1", "collections": {"passages": "c1"}, "v": 2})
    assert store.read_meta("m1")["v"] == 2 and store.read_meta("nope") is None
    assert [m["id"] for m in store.all_meta()] == ["m1"]
    store.delete_meta("m1")
    store.drop("c1")
    assert store.all_meta() == [] and "c1" not in store.collections()


def test_a_model_survives_a_restart_and_a_failed_build_leaves_nothing(opener, small) -> None:
    store = opener()
    model = build_model("squad", small, store, RetrievalParams(method="bm25"))
    question = small.passages["context"].iloc[0].split(".")[0]  # its first sentence
    before = model.search(question, k=3)
    assert before[0]["passage_id"] == small.passages["passage_id"].iloc[0]
    model.close()
    collections = store.collections()

    def fail(phase: str, done: int, total: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        build_model("broken", small, store, RetrievalParams(method="bm25"), on_progress=fail)
    assert store.read_meta("broken") is None and store.collections() == collections
    # A rebuild under the same id replaces the old collections.
    build_model("squad", small, store, RetrievalParams(method="bm25", k1=1.5), replace=True)
    assert len(store.collections()) == len(collections)

    store = opener()  # a restart
    reopened = RetrievalModel.open(store, "squad")
    assert reopened.params.k1 == 1.5
    assert reopened.search(question, k=3)[0]["passage_id"] == before[0]["passage_id"]
    with pytest.raises(NotFoundError, match="No retrieval model named 'other'"):
        RetrievalModel.open(store, "other")


def test_a_build_checks_the_name_again_just_before_it_writes(opener, small) -> None:
    """A model written under the name while a build runs (another process, the CLI) is not
    overwritten unless the build replaces and its guard agrees; what is replaced is what is
    there at the end, not what was there at the start."""
    store = opener()
    params = RetrievalParams(method="bm25", sentences=False)

    def intruding(owner: str) -> Callable[[str, int, int], None]:
        def progress(phase: str, done: int, total: int) -> None:
            if store.read_meta("x") is None:
                build_model("x", small, store, params, info={"owner": owner})

        return progress

    def only_mine(current: dict | None) -> None:
        if current is not None and current.get("owner") != "me":
            raise ConflictError("taken")

    with pytest.raises(ConflictError, match="'x' exists"):
        build_model("x", small, store, params, on_progress=intruding("them"))
    theirs = store.read_meta("x")
    assert theirs["owner"] == "them" and store.collections() == [theirs["collections"]["passages"]]
    store.delete_meta("x")
    for name in store.collections():
        store.drop(name)
    with pytest.raises(ConflictError, match="taken"):
        build_model(
            "x", small, store, params, replace=True, guard=only_mine, on_progress=intruding("them")
        )
    theirs = store.read_meta("x")
    assert theirs["owner"] == "them" and store.collections() == [theirs["collections"]["passages"]]
    seen: list[dict | None] = []
    mine = build_model(
        "x", small, store, params, replace=True, guard=seen.append, info={"owner": "me"}
    )
    assert seen == [theirs] and store.read_meta("x")["owner"] == "me"
    assert store.collections() == [mine.meta["collections"]["passages"]]  # theirs dropped


@pytest.mark.parametrize("building_elsewhere", [False, True])
def test_the_service_sweeps_what_a_killed_build_left(
    tmp_path, small, building_elsewhere: bool
) -> None:
    """At its first use the service drops the collections no model refers to: all of them
    (a killed build's, however young) unless a build job that another process runs may be
    filling one; then only those over an hour old."""
    import os
    import time

    from taxonomist.config import Settings
    from taxonomist.retrieval.service import RetrievalService
    from taxonomist.store import Database, Job, JobState
    from taxonomist.store.accounts import ensure_admin

    store = EdgeStore(tmp_path / "retrieval")
    build_model("kept", small, store, RetrievalParams(method="bm25", sentences=False))
    for name, age in (("dead-passages-1", 7200), ("young-passages-2", 10)):
        store.create(name, dense_size=None, sparse=True)
        store.close(name)
        then = time.time() - age
        os.utime(tmp_path / "retrieval" / "collections" / name, (then, then))
    store.shutdown()
    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate()
    with db.session() as s:
        ensure_admin(s, "admin-password-1")
        if building_elsewhere:
            s.add(Job(owner_id=1, kind="retrieval_build", state=JobState.RUNNING, config={}))
    service = RetrievalService(Settings(home=tmp_path), db)
    left = service.store.collections()
    young = ["young-passages-2"] if building_elsewhere else []
    assert left == sorted([service.meta("kept")["collections"]["passages"], *young])
    assert service.search("kept", small.questions["question"].iloc[0], 1)
    service.close()
    db.dispose()


def test_hybrid_gives_the_same_answers_on_both_backends(tmp_path, small) -> None:
    pytest.importorskip("sentence_transformers")
    edge = build_model("h", small, EdgeStore(tmp_path / "edge"))
    server = build_model("h", small, _server(tmp_path / "server"))
    questions = small.questions["question"].head(40).tolist()
    assert edge.rank_many(questions, k=5) == server.rank_many(questions, k=5)
    assert edge.signals == ["bm25", "bm25_sentence", "dense", "dense_sentence", "bm25_bigram"]
    assert edge.meta["encoder"] == "minilm" and edge.meta["language"] == "en"
