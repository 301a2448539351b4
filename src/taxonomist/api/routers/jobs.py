"""Training jobs: start, follow, cancel, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from taxonomist.api.deps import ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.routers.datasets import visible_dataset
from taxonomist.api.schemas import JobCreate, JobLogs, JobOut
from taxonomist.api.services import Principal
from taxonomist.errors import ConflictError, NotFoundError, TargetError
from taxonomist.store import Job, JobState, ModelOwner
from taxonomist.store.accounts import audit

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


def _job(s: Session, user: Principal, job_id: int) -> Job:
    job = s.get(Job, job_id)
    if job is None or (not user.is_admin and job.owner_id != user.id):
        raise NotFoundError(f"No job with id {job_id} is visible to you.")
    return job


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
    svc.engine.check()
    with svc.db.session() as s:
        ds = visible_dataset(s, user, body.dataset_id)
        target = body.target or ds.target
        if not target:
            raise TargetError(
                f"Dataset {ds.id} has no target: give 'target' (one of its columns: "
                f"{', '.join(list(ds.roles)[:20])})."
            )
        if target not in ds.roles:
            from taxonomist.data.schema import require_column

            require_column(target, list(ds.roles), what="target")
        owner = s.get(ModelOwner, body.model_name)
        if owner is not None and owner.owner_id != user.id and not user.is_admin:
            raise ConflictError(
                f"The model name '{body.model_name}' belongs to another user; choose another."
            )
        if owner is None and not user.is_admin:
            # Claim the name now, so two users cannot race for it.
            s.add(ModelOwner(name=body.model_name, owner_id=user.id))
        config = body.model_dump()
        config.update(
            target=target,
            dataset_path=ds.path,
            owner_id=owner.owner_id if owner is not None else user.id,
            time_budget=None
            if body.trials and "time_budget" not in body.model_fields_set
            else body.time_budget,
        )
        job = Job(owner_id=user.id, dataset_id=ds.id, config=config, progress={}, logs=[])
        s.add(job)
        s.flush()
        audit(s, user.id, "create_job", "job", str(job.id), {"model": body.model_name})
        out = JobOut.model_validate(job)
    svc.engine.wake()
    return out


@router.get("", response_model=list[JobOut], summary="Jobs you can see, newest first")
def list_jobs(
    user: UserDep,
    svc: ServicesDep,
    state: Annotated[
        str | None, Query(pattern="^(queued|running|succeeded|failed|cancelled)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    with svc.db.session() as s:
        q = select(Job).order_by(Job.id.desc()).limit(limit)
        if not user.is_admin:
            q = q.where(Job.owner_id == user.id)
        if state:
            q = q.where(Job.state == state)
        return [JobOut.model_validate(j) for j in s.scalars(q)]


@router.get("/{job_id}", response_model=JobOut, summary="State, live progress and result")
def get_job(job_id: int, user: UserDep, svc: ServicesDep) -> JobOut:
    with svc.db.session() as s:
        return JobOut.model_validate(_job(s, user, job_id))


@router.get("/{job_id}/logs", response_model=JobLogs, summary="The job's log lines")
def job_logs(job_id: int, user: UserDep, svc: ServicesDep) -> JobLogs:
    with svc.db.session() as s:
        job = _job(s, user, job_id)
        return JobLogs(id=job.id, state=job.state, lines=list(job.logs or []))


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Stop a queued or running job")
def cancel_job(job_id: int, user: UserDep, svc: ServicesDep) -> JobOut:
    with svc.db.session() as s:
        job = _job(s, user, job_id)
        if JobState(job.state).finished:
            raise ConflictError(f"Job {job_id} has already ended ({job.state}).")
        audit(s, user.id, "cancel_job", "job", str(job_id))
    svc.engine.cancel(job_id)
    with svc.db.session() as s:
        return JobOut.model_validate(_job(s, user, job_id))
