"""Training jobs: start, follow, cancel, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from taxonomist.api.deps import ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import JobCreate, JobLogs, JobOut
from taxonomist.api.services import jobs as service
from taxonomist.store import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.post(
    "",
    response_model=JobOut,
    status_code=202,
    summary="Train a model on a dataset",
    description="Queues the job; it runs on the Dask cluster when a slot is free. Follow it "
    "with GET /jobs/{id}. The model is registered under model_name; the alias 'champion' "
    "moves to it when it beats the current champion (or with promote).",
)
def create_job(body: JobCreate, user: UserDep, svc: ServicesDep) -> JobOut:
    return service.create_job(svc, user, body)


@router.get("", response_model=list[JobOut], summary="Jobs you can see, newest first")
def list_jobs(
    user: UserDep,
    svc: ServicesDep,
    state: Annotated[JobState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    return service.list_jobs(svc, user, state, limit)


@router.get("/{job_id}", response_model=JobOut, summary="State, live progress and result")
def get_job(job_id: int, user: UserDep, svc: ServicesDep) -> JobOut:
    return service.get_job(svc, user, job_id)


@router.get("/{job_id}/logs", response_model=JobLogs, summary="The job's log lines")
def job_logs(job_id: int, user: UserDep, svc: ServicesDep) -> JobLogs:
    return service.job_logs(svc, user, job_id)


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Stop a queued or running job")
def cancel_job(job_id: int, user: UserDep, svc: ServicesDep) -> JobOut:
    return service.cancel_job(svc, user, job_id)
