"""Retrieval: QA datasets, models built as jobs, load/unload, find the passage, benchmark,
quality test."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from taxonomist.api.deps import (
    AdminDep,
    HeavySlot,
    OwnedRetrievalModel,
    ServicesDep,
    UserDep,
    VisibleQADataset,
)
from taxonomist.api.errors import ERROR_RESPONSES
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
    RetrievalMap,
    RetrievalModelOut,
)
from taxonomist.api.services import datasets
from taxonomist.api.services import retrieval as service

router = APIRouter(prefix="/retrieval", tags=["retrieval"], responses=ERROR_RESPONSES)


# -- datasets ---------------------------------------------------------------------------------
@router.post(
    "/datasets",
    response_model=QAUploaded,
    status_code=201,
    summary="Upload a QA dataset: SQuAD-style JSON, or a table with context/question columns",
    description="The file is validated (required columns, empty contexts, questions without a "
    "passage) and explored; a file that cannot be used is not stored.",
    dependencies=[HeavySlot],
)
def upload_qa(
    user: UserDep,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="SQuAD JSON, or CSV/TSV/Parquet/JSONL")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    context: Annotated[str, Form(min_length=1, max_length=200)] = "context",
    question: Annotated[str, Form(min_length=1, max_length=200)] = "question",
    answer: Annotated[str | None, Form(max_length=200)] = "answer",
) -> QAUploaded:
    return service.upload_qa(svc, user, file, name, context, question, answer)


@router.get("/datasets", response_model=list[DatasetOut], summary="QA datasets you can see")
def list_qa(user: UserDep, svc: ServicesDep) -> list[DatasetOut]:
    return datasets.list_visible(svc, user, "qa")


@router.get(
    "/datasets/{dataset_id}",
    response_model=DatasetDetail,
    summary="A QA dataset with its validation report and exploration data",
)
def get_qa(ds: VisibleQADataset) -> DatasetDetail:
    return DatasetDetail.model_validate(ds)


@router.post(
    "/datasets/{dataset_id}/map",
    response_model=JobOut,
    status_code=202,
    summary="A t-SNE map of the TF-IDF of passages and questions (a job; points in its result)",
)
def map_job(ds: VisibleQADataset, body: RetrievalMap, user: UserDep, svc: ServicesDep) -> JobOut:
    return service.start_map(svc, user, ds, body)


# -- models -----------------------------------------------------------------------------------
@router.post(
    "/models",
    response_model=JobOut,
    status_code=202,
    summary="Build and save a retrieval model from a QA dataset (a job)",
    description="Follow it with GET /api/v1/jobs/{id}: progress counts the passages and "
    "sentences indexed. The model is saved under `name` only when whole. The name is "
    "reserved from now until the job ends: another build of it is refused (409) meanwhile, "
    "`replace=true` included (it replaces a finished model, and only one's own; an admin's "
    "anyone's).",
)
def build(body: RetrievalBuild, user: UserDep, svc: ServicesDep) -> JobOut:
    return service.start_build(svc, user, body)


@router.get(
    "/models",
    response_model=list[RetrievalModelOut],
    summary="Retrieval models you can see, with their hyper-parameters",
)
def list_models(user: UserDep, svc: ServicesDep) -> list[RetrievalModelOut]:
    return service.list_models(svc, user)


@router.get("/models/{model_id}", response_model=RetrievalModelOut, summary="One model")
def get_model(meta: OwnedRetrievalModel, svc: ServicesDep) -> RetrievalModelOut:
    return service.describe(svc, meta)


@router.post(
    "/models/{model_id}/load",
    response_model=RetrievalModelOut,
    summary="Load a model into memory (searching loads it too)",
)
def load(meta: OwnedRetrievalModel, svc: ServicesDep) -> RetrievalModelOut:
    return service.load(svc, meta)


@router.post(
    "/models/{model_id}/unload", response_model=RetrievalModelOut, summary="Free its memory"
)
def unload(meta: OwnedRetrievalModel, svc: ServicesDep) -> RetrievalModelOut:
    return service.unload(svc, meta)


@router.delete("/models/{model_id}", status_code=204, summary="Remove a model")
def remove(meta: OwnedRetrievalModel, user: UserDep, svc: ServicesDep) -> None:
    service.remove(svc, user, meta)


@router.delete("/models", summary="Remove every retrieval model (admin)")
def remove_all(user: AdminDep, svc: ServicesDep) -> dict[str, int]:
    return service.remove_all(svc, user)


@router.post(
    "/models/{model_id}/search",
    response_model=RetrievalAnswer,
    summary="Find the passages that answer a question (top-k with scores and ids)",
)
def search(meta: OwnedRetrievalModel, body: RetrievalAsk, svc: ServicesDep) -> RetrievalAnswer:
    return service.search(svc, meta, body)


@router.post(
    "/models/{model_id}/benchmark",
    response_model=RetrievalBenchmark,
    summary="Latency over N random questions of a dataset, one at a time (default 100)",
    dependencies=[HeavySlot],
)
def benchmark(
    meta: OwnedRetrievalModel, body: RetrievalDatasetRef, user: UserDep, svc: ServicesDep
) -> RetrievalBenchmark:
    return service.benchmark(svc, user, meta, body)


@router.post(
    "/models/{model_id}/evaluate",
    response_model=JobOut,
    status_code=202,
    summary="Quality test: top-1, top-5 and MRR@10 over every question of a dataset (a job)",
)
def evaluate(
    meta: OwnedRetrievalModel, body: RetrievalDatasetRef, user: UserDep, svc: ServicesDep
) -> JobOut:
    return service.start_evaluate(svc, user, meta, body)
