"""Retrieval: QA datasets, models built as jobs, load/unload, find the passage, benchmark,
quality test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from taxonomist.api.deps import AdminDep, ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.routers.datasets import store_upload, visible_dataset, visible_datasets
from taxonomist.api.schemas import (
    DatasetDetail,
    DatasetOut,
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
from taxonomist.api.services import Principal
from taxonomist.api.uploads import jsonable
from taxonomist.errors import InvalidParameterError
from taxonomist.retrieval.corpus import explore, load_qa
from taxonomist.retrieval.service import load_dataset
from taxonomist.store import Dataset, Job
from taxonomist.store.accounts import audit

router = APIRouter(prefix="/retrieval", tags=["retrieval"], responses=ERROR_RESPONSES)


def _require_qa(ds: Dataset) -> None:
    if ds.kind != "qa":
        raise InvalidParameterError(
            f"Dataset {ds.id} is a table, not a question-answer dataset: upload one "
            "with POST /api/v1/retrieval/datasets."
        )


def _qa_dataset(svc: Any, user: Principal, dataset_id: int) -> tuple[str, dict[str, str]]:
    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        _require_qa(ds)
        return ds.path, dict(ds.roles)


def _start_job(
    svc: Any, user: Principal, kind: str, dataset_id: int, config: dict[str, Any], work: Any
) -> JobOut:
    """A job row for ``work``, handed to the service's retrieval worker."""
    with svc.db.session() as s:
        job = Job(
            owner_id=user.id,
            dataset_id=dataset_id,
            kind=kind,
            config=config,
            progress={},
            logs=[],
        )
        s.add(job)
        s.flush()
        audit(s, user.id, f"create_{kind}_job", "job", str(job.id), config)
        out = JobOut.model_validate(job)
    svc.retrieval.submit(out.id, work)
    return out


# -- datasets ---------------------------------------------------------------------------------
@router.post(
    "/datasets",
    response_model=QAUploaded,
    status_code=201,
    summary="Upload a QA dataset: SQuAD-style JSON, or a table with context/question columns",
    description="The file is validated (required columns, empty contexts, questions without a "
    "passage) and explored; a file that cannot be used is not stored.",
)
def upload_qa(
    request: Request,
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="SQuAD JSON, or CSV/TSV/Parquet/JSONL")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    context: Annotated[str, Form(min_length=1, max_length=200)] = "context",
    question: Annotated[str, Form(min_length=1, max_length=200)] = "question",
    answer: Annotated[str | None, Form(max_length=200)] = "answer",
) -> QAUploaded:

    def describe(path: Path) -> dict[str, Any]:
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

    out, fields = store_upload(request, svc, user, file, name, describe, "upload_qa_dataset")
    report = fields["report"]
    return QAUploaded(dataset=out, report=report, warnings=report.get("warnings", []))


@router.get("/datasets", response_model=list[DatasetOut], summary="QA datasets you can see")
def list_qa(user: UserDep, svc: ServicesDep) -> list[DatasetOut]:
    return visible_datasets(svc, user, "qa")


@router.get(
    "/datasets/{dataset_id}",
    response_model=DatasetDetail,
    summary="A QA dataset with its validation report and exploration data",
)
def get_qa(dataset_id: int, user: UserDep, svc: ServicesDep) -> DatasetDetail:
    with svc.db.session() as s:
        ds = visible_dataset(s, user, dataset_id)
        _require_qa(ds)
        return DatasetDetail.model_validate(ds)


@router.post(
    "/datasets/{dataset_id}/map",
    response_model=JobOut,
    status_code=202,
    summary="A t-SNE map of the TF-IDF of passages and questions (a job; points in its result)",
)
def map_job(dataset_id: int, body: RetrievalMap, user: UserDep, svc: ServicesDep) -> JobOut:
    path, roles = _qa_dataset(svc, user, dataset_id)
    work = svc.retrieval.map_work(path, roles, body.sample)
    return _start_job(svc, user, "retrieval_map", dataset_id, body.model_dump(), work)


# -- models -----------------------------------------------------------------------------------
@router.post(
    "/models",
    response_model=JobOut,
    status_code=202,
    summary="Build and save a retrieval model from a QA dataset (a job)",
    description="Follow it with GET /api/v1/jobs/{id}: progress counts the passages and "
    "sentences indexed. The model is saved under `name` only when whole.",
)
def build(body: RetrievalBuild, user: UserDep, svc: ServicesDep) -> JobOut:
    with svc.db.session() as s:
        ds = visible_dataset(s, user, body.dataset_id)
        _require_qa(ds)
        path, roles, dataset_name = ds.path, dict(ds.roles), ds.name
    svc.retrieval.check_new_name(body.name, user.id, user.is_admin, body.replace)
    info = {
        "owner_id": user.id,
        "owner": user.username,
        "dataset_id": body.dataset_id,
        "dataset": dataset_name,
    }
    work = svc.retrieval.build_work(body.name, path, roles, body.params, info, body.replace)
    config = body.model_dump(mode="json")
    return _start_job(svc, user, "retrieval_build", body.dataset_id, config, work)


@router.get(
    "/models",
    response_model=list[RetrievalModelOut],
    summary="Retrieval models you can see, with their hyper-parameters",
)
def list_models(user: UserDep, svc: ServicesDep) -> list[RetrievalModelOut]:
    return [
        RetrievalModelOut.model_validate(m) for m in svc.retrieval.models(user.id, user.is_admin)
    ]


@router.get("/models/{model_id}", response_model=RetrievalModelOut, summary="One model")
def get_model(model_id: str, user: UserDep, svc: ServicesDep) -> RetrievalModelOut:
    meta = svc.retrieval.meta(model_id, user.id, user.is_admin)
    return RetrievalModelOut.model_validate(svc.retrieval.describe(meta))


@router.post(
    "/models/{model_id}/load",
    response_model=RetrievalModelOut,
    summary="Load a model into memory (searching loads it too)",
)
def load(model_id: str, user: UserDep, svc: ServicesDep) -> RetrievalModelOut:
    meta = svc.retrieval.meta(model_id, user.id, user.is_admin)
    svc.retrieval.load(model_id)
    return RetrievalModelOut.model_validate(svc.retrieval.describe(meta))


@router.post(
    "/models/{model_id}/unload", response_model=RetrievalModelOut, summary="Free its memory"
)
def unload(model_id: str, user: UserDep, svc: ServicesDep) -> RetrievalModelOut:
    meta = svc.retrieval.meta(model_id, user.id, user.is_admin)
    svc.retrieval.unload(model_id)
    return RetrievalModelOut.model_validate(svc.retrieval.describe(meta))


@router.delete("/models/{model_id}", status_code=204, summary="Remove a model")
def remove(model_id: str, user: UserDep, svc: ServicesDep) -> None:
    svc.retrieval.meta(model_id, user.id, user.is_admin)
    svc.retrieval.remove(model_id)
    with svc.db.session() as s:
        audit(s, user.id, "remove_retrieval_model", "retrieval_model", model_id)


@router.delete("/models", summary="Remove every retrieval model (admin)")
def remove_all(user: AdminDep, svc: ServicesDep) -> dict[str, int]:
    n = svc.retrieval.remove_all()
    with svc.db.session() as s:
        audit(s, user.id, "remove_all_retrieval_models", "retrieval_model", None, {"n": n})
    return {"removed": n}


@router.post(
    "/models/{model_id}/search",
    response_model=RetrievalAnswer,
    summary="Find the passages that answer a question (top-k with scores and ids)",
)
def search(model_id: str, body: RetrievalAsk, user: UserDep, svc: ServicesDep) -> RetrievalAnswer:
    import time

    svc.retrieval.meta(model_id, user.id, user.is_admin)
    start = time.perf_counter()
    hits = svc.retrieval.search(model_id, body.question, body.k)
    ms = (time.perf_counter() - start) * 1000
    return RetrievalAnswer(
        model=model_id,
        question=body.question,
        ms=round(ms, 3),
        passages=[RetrievalHit.model_validate(h) for h in hits],
    )


@router.post(
    "/models/{model_id}/benchmark",
    response_model=RetrievalBenchmark,
    summary="Latency over N random questions of a dataset, one at a time (default 100)",
)
def benchmark(
    model_id: str, body: RetrievalDatasetRef, user: UserDep, svc: ServicesDep
) -> RetrievalBenchmark:
    svc.retrieval.meta(model_id, user.id, user.is_admin)
    path, roles = _qa_dataset(svc, user, body.dataset_id)
    result = svc.retrieval.benchmark(model_id, load_dataset(path, roles), body.n, body.k)
    return RetrievalBenchmark(model=model_id, dataset_id=body.dataset_id, **result)


@router.post(
    "/models/{model_id}/evaluate",
    response_model=JobOut,
    status_code=202,
    summary="Quality test: top-1, top-5 and MRR@10 over every question of a dataset (a job)",
)
def evaluate(model_id: str, body: RetrievalDatasetRef, user: UserDep, svc: ServicesDep) -> JobOut:
    svc.retrieval.meta(model_id, user.id, user.is_admin)
    path, roles = _qa_dataset(svc, user, body.dataset_id)
    work = svc.retrieval.evaluate_work(model_id, path, roles)
    return _start_job(svc, user, "retrieval_evaluate", body.dataset_id, {"model": model_id}, work)
