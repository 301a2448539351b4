"""Retrieval as the service offers it: QA datasets, and retrieval models owned by the user who
built them (members see and change their own, admins all of them; someone else's model looks
like a missing one). The models themselves, their store and their jobs' work are the library's
:class:`~taxonomist.retrieval.service.RetrievalService`, which knows nothing of users."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from taxonomist.api.schemas import (
    JobOut,
    QAUploaded,
    RetrievalAnswer,
    RetrievalAsk,
    RetrievalBenchmark,
    RetrievalBuild,
    RetrievalDatasetRef,
    RetrievalHit,
    RetrievalMap,
    RetrievalModelOut,
)
from taxonomist.api.services.datasets import find_visible, store_upload
from taxonomist.api.services.jobs import start_service_job
from taxonomist.api.services.jsonable import jsonable
from taxonomist.api.services.state import Principal, Services
from taxonomist.errors import ConflictError, InvalidParameterError, NotFoundError
from taxonomist.retrieval.corpus import explore, load_qa
from taxonomist.retrieval.model import check_model_id
from taxonomist.retrieval.service import load_dataset
from taxonomist.store import Dataset
from taxonomist.store.accounts import audit


# -- datasets ---------------------------------------------------------------------------------
def require_qa(ds: Dataset) -> Dataset:
    """``ds`` when it is a question-answer dataset; a 422 for a table."""
    if ds.kind != "qa":
        raise InvalidParameterError(
            f"Dataset {ds.id} is a table, not a question-answer dataset: upload one "
            "with POST /api/v1/retrieval/datasets."
        )
    return ds


def qa_dataset(svc: Services, user: Principal, dataset_id: int) -> Dataset:
    """A QA dataset the user may see (404 otherwise; 422 for a table)."""
    return require_qa(find_visible(svc, user, dataset_id))


def describe_qa(path: Path, context: str, question: str, answer: str | None) -> dict[str, Any]:
    """Load and validate a QA file (SQuAD JSON, or a table with the named columns) and explore
    it: the dataset row's fields."""
    qa = load_qa(path, context=context, question=question, answer=answer or None)
    if path.suffix == ".json":
        roles = {"context": "context", "question": "question", "answer": "answer"}
    else:
        roles = {context: "context", question: "question"}
        if answer and qa.report.get("unanswered") is not None:
            roles[answer] = "answer"
    return {
        "n_rows": int(qa.report["questions"]),
        "n_columns": len(roles),
        "target": None,
        "roles": roles,
        "report": jsonable(qa.report),
        "profile": jsonable(explore(qa)),
        "kind": "qa",
    }


def upload_qa(
    svc: Services,
    user: Principal,
    file: UploadFile,
    name: str | None,
    context: str,
    question: str,
    answer: str | None,
) -> QAUploaded:
    """Store a QA dataset (SQuAD JSON, or a table with the named columns), validated and
    explored; a file that cannot be used is not stored."""
    out, fields = store_upload(
        svc,
        user,
        file,
        name,
        lambda path: describe_qa(path, context, question, answer),
        "upload_qa_dataset",
    )
    report = fields["report"]
    return QAUploaded(dataset=out, report=report, warnings=report.get("warnings", []))


def start_map(svc: Services, user: Principal, ds: Dataset, body: RetrievalMap) -> JobOut:
    """A job placing a sample of the dataset's passages and questions on a t-SNE map."""
    work = svc.retrieval.map_work(ds.path, dict(ds.roles), body.sample)
    return start_service_job(svc, user, "retrieval_map", ds.id, body.model_dump(), work)


# -- models: who sees what --------------------------------------------------------------------
def owned_model(svc: Services, user: Principal, model_id: str) -> dict[str, Any]:
    """The model's metadata when the user may see it; a 404 otherwise (no leak)."""
    meta = svc.retrieval.meta(model_id)
    if meta is None or (not user.is_admin and meta.get("owner_id") != user.id):
        raise NotFoundError(
            f"No retrieval model named '{model_id}' is visible to you. List yours with "
            "GET /api/v1/retrieval/models."
        )
    return meta


def list_models(svc: Services, user: Principal) -> list[RetrievalModelOut]:
    return [
        RetrievalModelOut.model_validate(m)
        for m in svc.retrieval.models()
        if user.is_admin or m.get("owner_id") == user.id
    ]


def check_new_name(svc: Services, user: Principal, model_id: str, replace: bool) -> None:
    """Refuse (409) a name someone else's model has, or an existing one unless ``replace``."""
    check_model_id(model_id)
    meta = svc.retrieval.meta(model_id)
    if meta is None:
        return
    if not user.is_admin and meta.get("owner_id") != user.id:
        raise ConflictError(
            f"The retrieval model name '{model_id}' belongs to another user; choose another."
        )
    if not replace:
        raise ConflictError(
            f"A retrieval model named '{model_id}' exists: choose another name, or pass "
            "replace=true to build it again."
        )


# -- models: the work -------------------------------------------------------------------------
def start_build(svc: Services, user: Principal, body: RetrievalBuild) -> JobOut:
    """A job building (or rebuilding) a retrieval model from a QA dataset the user sees; the
    model is saved, owned by the user, only when whole."""
    ds = qa_dataset(svc, user, body.dataset_id)
    check_new_name(svc, user, body.name, body.replace)
    info = {
        "owner_id": user.id,
        "owner": user.username,
        "dataset_id": body.dataset_id,
        "dataset": ds.name,
    }
    work = svc.retrieval.build_work(
        body.name, ds.path, dict(ds.roles), body.params, info, body.replace
    )
    config = body.model_dump(mode="json")
    return start_service_job(svc, user, "retrieval_build", body.dataset_id, config, work)


def describe(svc: Services, meta: dict[str, Any]) -> RetrievalModelOut:
    return RetrievalModelOut.model_validate(svc.retrieval.describe(meta))


def load(svc: Services, meta: dict[str, Any]) -> RetrievalModelOut:
    svc.retrieval.load(meta["id"])
    return describe(svc, meta)


def unload(svc: Services, meta: dict[str, Any]) -> RetrievalModelOut:
    svc.retrieval.unload(meta["id"])
    return describe(svc, meta)


def remove(svc: Services, user: Principal, meta: dict[str, Any]) -> None:
    svc.retrieval.remove(meta["id"])
    with svc.db.session() as s:
        audit(s, user.id, "remove_retrieval_model", "retrieval_model", meta["id"])


def remove_all(svc: Services, admin: Principal) -> dict[str, int]:
    """Remove every retrieval model (an admin's call)."""
    n = svc.retrieval.remove_all()
    with svc.db.session() as s:
        audit(s, admin.id, "remove_all_retrieval_models", "retrieval_model", None, {"n": n})
    return {"removed": n}


def search(svc: Services, meta: dict[str, Any], body: RetrievalAsk) -> RetrievalAnswer:
    """The top-k passages for a question, and how long the search took."""
    start = time.perf_counter()
    hits = svc.retrieval.search(meta["id"], body.question, body.k)
    ms = (time.perf_counter() - start) * 1000
    return RetrievalAnswer(
        model=meta["id"],
        question=body.question,
        ms=round(ms, 3),
        passages=[RetrievalHit.model_validate(h) for h in hits],
    )


def benchmark(
    svc: Services, user: Principal, meta: dict[str, Any], body: RetrievalDatasetRef
) -> RetrievalBenchmark:
    """Latency over ``body.n`` random questions of a QA dataset, one at a time."""
    ds = qa_dataset(svc, user, body.dataset_id)
    dataset = load_dataset(ds.path, dict(ds.roles))
    result = svc.retrieval.benchmark(meta["id"], dataset, body.n, body.k)
    return RetrievalBenchmark(model=meta["id"], dataset_id=body.dataset_id, **result)


def start_evaluate(
    svc: Services, user: Principal, meta: dict[str, Any], body: RetrievalDatasetRef
) -> JobOut:
    """A job measuring top-1, top-5 and MRR@10 over every question of a QA dataset."""
    ds = qa_dataset(svc, user, body.dataset_id)
    work = svc.retrieval.evaluate_work(meta["id"], ds.path, dict(ds.roles))
    config = {"model": meta["id"]}
    return start_service_job(svc, user, "retrieval_evaluate", body.dataset_id, config, work)
