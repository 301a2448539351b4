"""Retrieval over the REST API: QA datasets, models built as jobs, load/unload, search,
benchmark, quality test, removal; with the same auth and error rules as the rest."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taxonomist.config import Settings
from tests.conftest import admin_headers, assert_error, new_member, small_squad, wait_job

API = "/api/v1/retrieval"
ENDED = {"succeeded", "failed", "cancelled"}
BM25 = {"method": "bm25", "sentences": False}  # the quickest build


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_mb": 3}


def upload_qa(
    api: TestClient, headers: dict[str, str], content: bytes, filename: str, **form: str
) -> Any:
    return api.post(
        f"{API}/datasets",
        files={"file": (filename, io.BytesIO(content), "application/octet-stream")},
        data=form,
        headers=headers,
    )


@pytest.fixture(scope="module")
def built(api: TestClient) -> dict[str, Any]:
    """A member's QA dataset and a BM25 model 'qa-bm25' built on it."""
    headers, user_id = new_member(api)
    r = upload_qa(api, headers, small_squad(), "squad.json", name="squad sample")
    assert r.status_code == 201, r.text
    dataset_id = r.json()["dataset"]["id"]
    body = {"name": "qa-bm25", "dataset_id": dataset_id, "params": {"method": "bm25"}}
    r = api.post(f"{API}/models", json=body, headers=headers)
    assert r.status_code == 202, r.text
    job = wait_job(api, headers, r.json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", job
    assert job["kind"] == "retrieval_build" and job["progress"]["total"] > 0
    return {"headers": headers, "dataset_id": dataset_id, "user_id": user_id, "job": job}


def test_upload_reports_and_explores_a_qa_dataset(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    detail = api.get(f"{API}/datasets/{built['dataset_id']}", headers=h).json()
    assert detail["kind"] == "qa" and detail["report"]["passages"] == 40
    profile = detail["profile"]
    assert profile["language"] == "en" and profile["passages"] == 40
    assert len(profile["words_per_question"]) == detail["report"]["questions"]
    assert profile["frequent_stop_words"][0][0] == "the"
    assert all(w not in {"the", "of"} for w, _ in profile["frequent_words"])
    ids = [d["id"] for d in api.get(f"{API}/datasets", headers=h).json()]
    assert built["dataset_id"] in ids
    # QA datasets are not offered for training, and tables are not QA datasets.
    r = api.patch(f"/api/v1/datasets/{built['dataset_id']}", json={"target": "x"}, headers=h)
    assert "question-answer dataset" in assert_error(r, 422)["message"]
    assert built["dataset_id"] not in [
        d["id"] for d in api.get("/api/v1/datasets", headers=h).json()
    ]
    table = api.post(
        "/api/v1/datasets",
        files={"file": ("t.csv", io.BytesIO(b"context,question\na b c,d e?\n"), "text/csv")},
        headers=h,
    ).json()["dataset"]["id"]
    r = api.post(f"{API}/models", json={"name": "t", "dataset_id": table}, headers=h)
    assert "is a table, not a question-answer dataset" in assert_error(r, 422)["message"]


def test_a_table_with_chosen_columns(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    csv = (
        b"passage,q\nParis is the capital of France.,What is the capital of France?\n"
        b"The Nile flows through Egypt.,Where does the Nile flow?\n"
    )
    r = upload_qa(api, h, csv, "qa.csv", context="passage", question="q")
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["roles"] == {"passage": "context", "q": "question"}


@pytest.mark.parametrize(
    "content, filename, form, status, needle",
    [
        (b'{"items": []}', "qa.json", {}, 400, "not SQuAD-style"),
        (b'{"data": [', "qa.json", {}, 400, "not valid JSON"),
        (b"context,questoin\na b,c?\n", "qa.csv", {}, 422, "Did you mean 'questoin'"),
        (b"context,question\n,a?\n,b?\n", "qa.csv", {}, 422, "no passages"),
        (b"\x00\x01\x02garbage", "qa.parquet", {}, 400, None),
        (b"x" * 3_500_000, "qa.csv", {}, 413, "upload limit"),
    ],
)
def test_bad_qa_uploads_are_refused_and_not_stored(
    api: TestClient,
    api_settings: Settings,
    content: bytes,
    filename: str,
    form: dict[str, str],
    status: int,
    needle: str | None,
) -> None:
    h, _ = new_member(api)
    before = sorted(p.name for p in api_settings.datasets_dir.glob("*"))
    r = upload_qa(api, h, content, filename, **form)
    err = assert_error(r, status)
    if needle:
        assert needle in err["message"]
    assert sorted(p.name for p in api_settings.datasets_dir.glob("*")) == before
    assert api.get(f"{API}/datasets", headers=h).json() == []


def test_search_load_unload_benchmark_and_quality(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    [model] = api.get(f"{API}/models", headers=h).json()
    assert model["id"] == "qa-bm25" and model["params"]["method"] == "bm25"
    assert model["params"]["k1"] == 1.2 and model["n_passages"] == 40
    assert model["backend"] == "qdrant-edge" and model["loaded"] is False
    assert api.post(f"{API}/models/qa-bm25/load", headers=h).json()["loaded"] is True
    r = api.post(
        f"{API}/models/qa-bm25/search",
        json={"question": "In what country is Normandy located?", "k": 3},
        headers=h,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert len(answer["passages"]) == 3 and answer["passages"][0]["rank"] == 1
    assert "Normandy" in answer["passages"][0]["context"]
    scores = [p["score"] for p in answer["passages"]]
    assert scores == sorted(scores, reverse=True)
    bench = api.post(
        f"{API}/models/qa-bm25/benchmark",
        json={"dataset_id": built["dataset_id"], "n": 30},
        headers=h,
    ).json()
    assert bench["n"] == 30 and len(bench["ms"]) == 30
    assert 0 < bench["p50_ms"] <= bench["p99_ms"] < 1000
    assert sum(bench["histogram"]["counts"]) == 30
    r = api.post(
        f"{API}/models/qa-bm25/evaluate", json={"dataset_id": built["dataset_id"]}, headers=h
    )
    assert r.status_code == 202, r.text
    job = wait_job(api, h, r.json()["id"], {"succeeded", "failed"})
    result = job["result"]
    assert job["state"] == "succeeded", job
    assert result["n"] == 216 and result["top1"] > 0.7
    assert result["top1"] <= result["mrr10"] <= result["top5"] <= 1
    assert api.post(f"{API}/models/qa-bm25/unload", headers=h).json()["loaded"] is False


def test_map_job(api: TestClient, built: dict[str, Any]) -> None:
    h = built["headers"]
    r = api.post(f"{API}/datasets/{built['dataset_id']}/map", json={"sample": 200}, headers=h)
    assert r.status_code == 202, r.text
    job = wait_job(api, h, r.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job
    points = job["result"]["points"]
    assert len(points) == 200 and {p["label"] for p in points} == {"passage", "question"}


def test_bad_requests_and_other_users(api: TestClient, built: dict[str, Any]) -> None:
    h, ds = built["headers"], built["dataset_id"]
    other, _ = new_member(api)
    # Another member sees neither the model nor the dataset, and cannot take the name.
    assert_error(
        api.post(f"{API}/models/qa-bm25/search", json={"question": "x"}, headers=other), 404
    )
    assert api.get(f"{API}/models", headers=other).json() == []
    assert_error(
        api.post(f"{API}/models", json={"name": "x", "dataset_id": ds}, headers=other), 404
    )
    body = {"name": "qa-bm25", "dataset_id": ds, "params": {"method": "bm25"}}
    assert "exists" in assert_error(api.post(f"{API}/models", json=body, headers=h), 409)["message"]
    for bad in (
        {"name": "bad name!", "dataset_id": ds},
        {"name": "ok", "dataset_id": ds, "params": {"method": "magic"}},
        {"name": "ok", "dataset_id": ds, "params": {"k1": "high"}},
        {"name": "ok", "dataset_id": ds, "params": {"typo": 1}},
        {"name": "ok", "dataset_id": "one"},
    ):
        assert_error(api.post(f"{API}/models", json=bad, headers=h), 422)
    for bad in ({"question": ""}, {"question": "   "}, {"question": "x", "k": 0}, {"k": 3}):
        assert_error(api.post(f"{API}/models/qa-bm25/search", json=bad, headers=h), 422)
    assert_error(api.post(f"{API}/models/nope/search", json={"question": "x"}, headers=h), 404)
    assert_error(api.get(f"{API}/models", headers={}), 401)
    assert_error(api.delete(f"{API}/models", headers=h), 403)


def test_a_cancelled_build_leaves_no_model(api: TestClient, built: dict[str, Any]) -> None:
    h, ds = built["headers"], built["dataset_id"]
    job = api.post(f"{API}/models", json={"name": "cancelled", "dataset_id": ds}, headers=h)
    assert job.status_code == 202, job.text
    assert api.post(f"/api/v1/jobs/{job.json()['id']}/cancel", headers=h).status_code == 200
    ended = wait_job(api, h, job.json()["id"], {"succeeded", "failed", "cancelled"})
    assert ended["state"] == "cancelled", ended
    assert_error(api.get(f"{API}/models/cancelled", headers=h), 404)


# -- who may build which name -----------------------------------------------------------------
@dataclass
class HeldWorker:
    """Retrieval jobs submitted while this is installed wait for ``release`` before they work:
    the first holds the worker (``running``), the next queue behind it. Those whose id is in
    ``failing`` then fail, as a full disk would fail them."""

    release: threading.Event = field(default_factory=threading.Event)
    failing: set[int] = field(default_factory=set)


@pytest.fixture
def held(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldWorker]:
    worker = HeldWorker()
    retrieval = api.app.state.services.retrieval
    submit = retrieval.submit

    def submit_held(job_id: int, work: Any) -> None:
        def waiting(progress: Any) -> dict[str, Any]:
            assert worker.release.wait(60), "the test never released the worker"
            if job_id in worker.failing:
                raise RuntimeError("No space left on device")
            result: dict[str, Any] = work(progress)
            return result

        submit(job_id, waiting)

    monkeypatch.setattr(retrieval, "submit", submit_held)
    yield worker
    worker.release.set()  # never leave the worker held for the next test


def own_qa(api: TestClient) -> tuple[dict[str, str], int, int]:
    """A new member with a QA dataset of their own: headers, user id, dataset id."""
    headers, user_id = new_member(api)
    r = upload_qa(api, headers, small_squad(10), "mine.json")
    assert r.status_code == 201, r.text
    return headers, user_id, r.json()["dataset"]["id"]


def build(
    api: TestClient, headers: dict[str, str], name: str, dataset_id: int, replace: bool = False
) -> Any:
    body = {"name": name, "dataset_id": dataset_id, "params": BM25, "replace": replace}
    return api.post(f"{API}/models", json=body, headers=headers)


def queued(api: TestClient, headers: dict[str, str], name: str, dataset_id: int) -> int:
    r = build(api, headers, name, dataset_id)
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def test_a_name_being_built_cannot_be_taken_or_replaced(
    api: TestClient, built: dict[str, Any], held: HeldWorker
) -> None:
    a, ds = built["headers"], built["dataset_id"]
    b, _, ds_b = own_qa(api)
    admin = admin_headers(api)
    x, y = f"race-{uuid.uuid4().hex[:6]}", f"race-{uuid.uuid4().hex[:6]}"
    running = queued(api, a, x, ds)
    wait_job(api, a, running, {"running"}, timeout=30)
    waiting = queued(api, a, y, ds)
    assert api.get(f"/api/v1/jobs/{waiting}", headers=a).json()["state"] == "queued"
    # Another member cannot queue a build of either name, replacing or not, and learns only
    # that the name is taken: not by whom, nor that it is being built.
    for name in (x, y):
        for replace in (False, True):
            err = assert_error(build(api, b, name, ds_b, replace), 409, "conflict")
            assert err["message"] == f"The retrieval model name '{name}' is taken; choose another."
    # Its owner and an admin are told which job holds it; replace=true replaces only a
    # finished model.
    for headers, name, job in ((a, x, running), (a, y, waiting), (admin, x, running)):
        for replace in (False, True):
            err = assert_error(build(api, headers, name, ds, replace), 409, "conflict")
            assert f"is being built by job {job}" in err["message"]
    held.release.set()
    for job in (running, waiting):
        assert wait_job(api, a, job, ENDED)["state"] == "succeeded"
    # A's models are A's, built from A's dataset; B still cannot replace them once finished.
    before = api.get(f"{API}/models/{x}", headers=a).json()
    assert before["owner"] == api.get("/api/v1/auth/me", headers=a).json()["username"]
    assert before["owner_id"] == built["user_id"] and before["dataset_id"] == ds
    err = assert_error(build(api, b, x, ds_b, replace=True), 409, "conflict")
    assert err["message"] == f"The retrieval model name '{x}' is taken; choose another."
    assert_error(api.get(f"{API}/models/{x}", headers=b), 404)
    assert api.get(f"{API}/models/{x}", headers=a).json() == before
    # An admin may rebuild anyone's model; it stays its owner's.
    job = build(api, admin, x, ds, replace=True).json()["id"]
    assert wait_job(api, admin, job, ENDED)["state"] == "succeeded"
    after = api.get(f"{API}/models/{x}", headers=a).json()
    assert after["owner_id"] == built["user_id"] and after["built_at"] >= before["built_at"]
    for name in (x, y):
        assert api.delete(f"{API}/models/{name}", headers=a).status_code == 204


def test_simultaneous_builds_of_one_name_queue_one_job(
    api: TestClient, built: dict[str, Any], held: HeldWorker
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    a, ds = built["headers"], built["dataset_id"]
    b, _, ds_b = own_qa(api)
    name = f"rush-{uuid.uuid4().hex[:6]}"
    who = [(a, ds), (b, ds_b)] * 4
    with ThreadPoolExecutor(len(who)) as pool:
        answers = list(pool.map(lambda hd: build(api, hd[0], name, hd[1], True), who))
    accepted = [r for r in answers if r.status_code == 202]
    assert len(accepted) == 1, [r.text for r in answers]
    assert sorted(r.status_code for r in answers) == [202] + [409] * (len(who) - 1)
    held.release.set()
    owner = a if accepted[0].json()["owner_id"] == built["user_id"] else b
    assert wait_job(api, owner, accepted[0].json()["id"], ENDED)["state"] == "succeeded"
    assert api.delete(f"{API}/models/{name}", headers=owner).status_code == 204


def test_a_name_is_free_again_when_its_build_fails_or_is_cancelled(
    api: TestClient, built: dict[str, Any], held: HeldWorker
) -> None:
    a, ds = built["headers"], built["dataset_id"]
    names = [f"free-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    cancelled_running = queued(api, a, names[0], ds)
    wait_job(api, a, cancelled_running, {"running"}, timeout=30)
    cancelled_queued = queued(api, a, names[1], ds)
    failing = queued(api, a, names[2], ds)
    held.failing.add(failing)
    # A queued build whose cancel flag is set will never run: its name is free at once.
    assert api.post(f"/api/v1/jobs/{cancelled_queued}/cancel", headers=a).status_code == 200
    again = queued(api, a, names[1], ds)
    # A running one may still write its model until it stops: its name stays taken.
    assert api.post(f"/api/v1/jobs/{cancelled_running}/cancel", headers=a).status_code == 200
    assert_error(build(api, a, names[0], ds), 409, "conflict")
    held.release.set()
    assert wait_job(api, a, cancelled_running, ENDED)["state"] == "cancelled"
    assert wait_job(api, a, cancelled_queued, ENDED)["state"] == "cancelled"
    assert "No space left" in wait_job(api, a, failing, ENDED)["error"]
    assert wait_job(api, a, again, ENDED)["state"] == "succeeded"
    for name in (names[0], names[2]):
        assert wait_job(api, a, queued(api, a, name, ds), ENDED)["state"] == "succeeded"
    for name in names:
        assert api.delete(f"{API}/models/{name}", headers=a).status_code == 204


def test_a_build_checks_the_owner_again_before_it_writes(
    api: TestClient, built: dict[str, Any], held: HeldWorker, tmp_path: Path
) -> None:
    """The name was free when A queued the build; by the time it writes, B's model has it
    (built outside the API, e.g. by the CLI on the service's home). A's build must not
    replace B's model, even with replace=true."""
    from taxonomist.retrieval import RetrievalParams, build_model, load_qa

    a, ds = built["headers"], built["dataset_id"]
    b, b_id, _ = own_qa(api)
    svc = api.app.state.services
    name = f"recheck-{uuid.uuid4().hex[:6]}"
    job = build(api, a, name, ds, replace=True).json()["id"]
    wait_job(api, a, job, {"running"}, timeout=30)
    (tmp_path / "qa.json").write_bytes(small_squad(10))
    theirs = build_model(
        name,
        load_qa(tmp_path / "qa.json"),
        svc.retrieval.store,
        RetrievalParams(**BM25),
        info={"owner_id": b_id, "owner": "b"},
    )
    collections = svc.retrieval.store.collections()
    held.release.set()
    ended = wait_job(api, a, job, ENDED)
    assert ended["state"] == "failed", ended
    assert ended["error"] == f"The retrieval model name '{name}' is taken; choose another."
    assert_error(api.get(f"{API}/models/{name}", headers=a), 404)
    kept = api.get(f"{API}/models/{name}", headers=b).json()
    assert kept["owner_id"] == b_id and kept["built_at"] == theirs.meta["built_at"]
    assert svc.retrieval.store.collections() == collections  # A's half-build is gone
    assert api.delete(f"{API}/models/{name}", headers=b).status_code == 204


# -- the access matrix ------------------------------------------------------------------------
CALLERS = ("owner", "admin", "other", "anonymous")
# operation -> (method, path, body, the owner's and an admin's status); {m}: the model,
# {ds}: the owner's QA dataset. Nobody else may do any of them.
OPERATIONS: dict[str, tuple[str, str, dict[str, Any] | None, int]] = {
    "get": ("GET", "/models/{m}", None, 200),
    "load": ("POST", "/models/{m}/load", None, 200),
    "unload": ("POST", "/models/{m}/unload", None, 200),
    "search": ("POST", "/models/{m}/search", {"question": "Where is Normandy?", "k": 2}, 200),
    "benchmark": ("POST", "/models/{m}/benchmark", {"dataset_id": "{ds}", "n": 5}, 200),
    "evaluate": ("POST", "/models/{m}/evaluate", {"dataset_id": "{ds}"}, 202),
    "map": ("POST", "/datasets/{ds}/map", {"sample": 100}, 202),
    "delete": ("DELETE", "/models/{m}", None, 204),
}


@pytest.fixture(scope="module")
def matrix(api: TestClient, built: dict[str, Any]) -> dict[str, Any]:
    """The headers of each caller; the owner is ``built``'s member, with model 'matrix'."""
    h, ds = built["headers"], built["dataset_id"]
    assert wait_job(api, h, queued(api, h, "matrix", ds), ENDED)["state"] == "succeeded"
    other, _, other_ds = own_qa(api)
    callers = {"owner": h, "admin": admin_headers(api), "other": other, "anonymous": {}}
    return {"callers": callers, "dataset_id": ds, "other_dataset_id": other_ds}


def _call(
    api: TestClient, operation: str, headers: dict[str, str], model: str, dataset_id: int
) -> Any:
    method, path, body, _ = OPERATIONS[operation]
    path = path.format(m=model, ds=dataset_id)
    if body is not None:
        body = {k: dataset_id if v == "{ds}" else v for k, v in body.items()}
    return api.request(method, API + path, json=body, headers=headers)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_who_may_do_what_to_a_retrieval_model(
    api: TestClient, matrix: dict[str, Any], operation: str, caller: str
) -> None:
    owner, headers = matrix["callers"]["owner"], matrix["callers"][caller]
    ds, model = matrix["dataset_id"], "matrix"
    if operation == "delete":  # a model of its own, so the others keep theirs
        model = f"doomed-{uuid.uuid4().hex[:6]}"
        assert wait_job(api, owner, queued(api, owner, model, ds), ENDED)["state"] == "succeeded"
    r = _call(api, operation, headers, model, ds)
    if caller == "anonymous":
        assert_error(r, 401, "unauthorized")
    elif caller == "other":
        # Exactly what a model (or dataset) that does not exist answers: nothing of the owner's.
        err = assert_error(r, 404, "not_found")
        missing = assert_error(_call(api, operation, headers, "no-such-model", 10**6), 404)
        assert err == {
            **missing,
            "message": missing["message"]
            .replace("no-such-model", model)
            .replace(str(10**6), str(ds)),
        }
    else:
        assert r.status_code == OPERATIONS[operation][3], r.text
        if r.status_code == 202:  # a job: the caller's, and it works
            job = wait_job(api, headers, r.json()["id"], ENDED)
            me = api.get("/api/v1/auth/me", headers=headers).json()["id"]
            assert job["state"] == "succeeded" and job["owner_id"] == me, job
    gone = operation == "delete" and caller in ("owner", "admin")
    assert api.get(f"{API}/models/{model}", headers=owner).status_code == (404 if gone else 200)


@pytest.mark.parametrize("caller", CALLERS)
def test_who_sees_a_retrieval_model_in_the_list(
    api: TestClient, matrix: dict[str, Any], caller: str
) -> None:
    r = api.get(f"{API}/models", headers=matrix["callers"][caller])
    if caller == "anonymous":
        assert_error(r, 401, "unauthorized")
        return
    assert r.status_code == 200, r.text
    assert ("matrix" in [m["id"] for m in r.json()]) == (caller != "other")


@pytest.mark.parametrize("operation", ["benchmark", "evaluate"])
def test_a_member_cannot_reach_anothers_dataset_through_their_own_model(
    api: TestClient, matrix: dict[str, Any], operation: str
) -> None:
    other, theirs = matrix["callers"]["other"], matrix["other_dataset_id"]
    name = f"own-{uuid.uuid4().hex[:6]}"
    assert wait_job(api, other, queued(api, other, name, theirs), ENDED)["state"] == "succeeded"
    err = assert_error(_call(api, operation, other, name, matrix["dataset_id"]), 404)
    assert err["message"] == f"No dataset with id {matrix['dataset_id']} is visible to you."
    r = _call(api, operation, other, name, theirs)
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:  # the quality test: ended before its model is deleted
        assert wait_job(api, other, r.json()["id"], ENDED)["state"] == "succeeded"
    assert api.delete(f"{API}/models/{name}", headers=other).status_code == 204


def test_remove_one_and_all(api: TestClient, api_settings: Settings, built: dict[str, Any]) -> None:
    h, ds = built["headers"], built["dataset_id"]
    for name in ("gone-1", "gone-2"):
        body = {"name": name, "dataset_id": ds, "params": {"method": "bm25", "sentences": False}}
        job = api.post(f"{API}/models", json=body, headers=h).json()
        assert wait_job(api, h, job["id"], {"succeeded", "failed"})["state"] == "succeeded"
    assert api.delete(f"{API}/models/gone-1", headers=h).status_code == 204
    assert_error(api.get(f"{API}/models/gone-1", headers=h), 404)
    assert api.delete(f"{API}/models", headers=admin_headers(api)).json()["removed"] >= 2
    assert api.get(f"{API}/models", headers=h).json() == []
    assert list((api_settings.home / "retrieval" / "collections").iterdir()) == []


def test_a_model_under_a_quality_test_is_not_removed(
    api: TestClient, built: dict[str, Any], held: HeldWorker
) -> None:
    """Removing a model that a queued or running quality test will load is a 409 (the test
    would load it back half-removed and leave its collection behind); once it ended, fine."""
    h, ds = built["headers"], built["dataset_id"]
    name = f"tested-{uuid.uuid4().hex[:6]}"
    held.release.set()
    assert wait_job(api, h, queued(api, h, name, ds), ENDED)["state"] == "succeeded"
    held.release.clear()
    r = api.post(f"{API}/models/{name}/evaluate", json={"dataset_id": ds}, headers=h)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    err = assert_error(api.delete(f"{API}/models/{name}", headers=h), 409, "conflict")
    assert f"Job {job} is testing the retrieval model '{name}'" in err["message"]
    held.release.set()
    assert wait_job(api, h, job, ENDED)["state"] == "succeeded"
    assert api.delete(f"{API}/models/{name}", headers=h).status_code == 204
