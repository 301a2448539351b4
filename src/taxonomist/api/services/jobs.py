"""Jobs: queue a training job (claiming its model name), follow, list and cancel jobs, and
start the service's own jobs (retrieval builds, quality tests, maps)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taxonomist.api.schemas import JobCreate, JobLogs, JobOut
from taxonomist.api.services.datasets import visible_dataset
from taxonomist.api.services.state import Principal, Services
from taxonomist.data.schema import require_column
from taxonomist.errors import ConflictError, NotFoundError, TargetError, TooManyRequestsError
from taxonomist.store import UNFINISHED, Job, JobState, ModelOwner, User
from taxonomist.store.accounts import audit


def visible_job(s: Session, user: Principal, job_id: int) -> Job:
    """The job row when ``user`` may see it (theirs, or any for an admin); a 404 otherwise."""
    job = s.get(Job, job_id)
    if job is None or (not user.is_admin and job.owner_id != user.id):
        raise NotFoundError(f"No job with id {job_id} is visible to you.")
    return job


def check_job_cap(s: Session, svc: Services, user_id: int | None) -> None:
    """A member may have at most ``TAXONOMIST_MAX_JOBS_PER_USER`` jobs queued or running, so
    one user cannot fill the queue for everyone (a 429; admins have no cap). The user's row is
    locked for the count (PostgreSQL): two requests at once cannot both take the last slot."""
    if user_id is None:
        return
    row = s.scalar(select(User).where(User.id == user_id).with_for_update())
    if row is None or row.role == "admin":
        return
    cap = svc.settings.max_jobs_per_user
    active = s.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.owner_id == user_id, Job.state.in_(UNFINISHED))
    )
    if (active or 0) >= cap:
        raise TooManyRequestsError(
            f"You have {active} jobs queued or running, the most a member may have at once "
            f"(TAXONOMIST_MAX_JOBS_PER_USER={cap}). Wait for one to end, or cancel one "
            "(POST /api/v1/jobs/{job_id}/cancel).",
            retry_after=30,
        )


def create_job(svc: Services, user: Principal, body: JobCreate) -> JobOut:
    """Queue a training job on a dataset the user sees; the model name is claimed now, so two
    users cannot race for it (409 when it is someone else's)."""
    svc.engine.check()
    with svc.db.session() as s:
        check_job_cap(s, svc, user.id)
        ds = visible_dataset(s, user, body.dataset_id)
        target = body.target or ds.target
        if not target:
            raise TargetError(
                f"Dataset {ds.id} has no target: give 'target' (one of its columns: "
                f"{', '.join(list(ds.roles)[:20])})."
            )
        if target not in ds.roles:
            require_column(target, list(ds.roles), what="target")
        owner = s.get(ModelOwner, body.model_name)
        if owner is not None and owner.owner_id != user.id and not user.is_admin:
            raise ConflictError(f"The model name '{body.model_name}' is taken; choose another.")
        if owner is None and not user.is_admin:
            if svc.registry.exists(body.model_name):  # registered without an owner (the CLI
                raise ConflictError(  # on this home, a job that died): an admin's
                    f"The model name '{body.model_name}' is taken; choose another."
                )
            s.add(ModelOwner(name=body.model_name, owner_id=user.id))
        config = body.model_dump(mode="json")
        config.update(
            target=target,
            dataset_path=ds.path,
            owner_id=owner.owner_id if owner is not None else user.id,
        )
        job = Job(owner_id=user.id, dataset_id=ds.id, config=config, progress={}, logs=[])
        s.add(job)
        s.flush()
        audit(s, user.id, "create_job", "job", str(job.id), {"model": body.model_name})
        out = JobOut.model_validate(job)
    svc.engine.wake()
    return out


def start_service_job(
    svc: Services, user: Principal, kind: str, dataset_id: int, config: dict[str, Any], work: Any
) -> JobOut:
    """A job row for ``work`` (a function of a progress callback), run by the service's
    retrieval worker with the same progress, logs and cancel flag as training jobs."""
    with svc.db.session() as s:
        check_job_cap(s, svc, user.id)
        job = Job(
            owner_id=user.id,
            dataset_id=dataset_id,
            kind=kind,
            config=config,
            progress={},
            logs=[],
            **svc.engine.holding(),  # this process runs it: its engine renews the lease
        )
        s.add(job)
        s.flush()
        audit(s, user.id, f"create_{kind}_job", "job", str(job.id), config)
        out = JobOut.model_validate(job)
    svc.retrieval.submit(out.id, work)
    return out


def list_jobs(svc: Services, user: Principal, state: JobState | None, limit: int) -> list[JobOut]:
    """The jobs the user may see, newest first, optionally in one state."""
    with svc.db.session() as s:
        q = select(Job).order_by(Job.id.desc()).limit(limit)
        if not user.is_admin:
            q = q.where(Job.owner_id == user.id)
        if state:
            q = q.where(Job.state == state.value)
        return [JobOut.model_validate(j) for j in s.scalars(q)]


def get_job(svc: Services, user: Principal, job_id: int) -> JobOut:
    with svc.db.session() as s:
        return JobOut.model_validate(visible_job(s, user, job_id))


def job_logs(svc: Services, user: Principal, job_id: int) -> JobLogs:
    with svc.db.session() as s:
        job = visible_job(s, user, job_id)
        return JobLogs(id=job.id, state=JobState(job.state), lines=list(job.logs or []))


def cancel_job(svc: Services, user: Principal, job_id: int) -> JobOut:
    """Ask a queued or running job to stop (409 when it has ended); the job as it is now."""
    with svc.db.session() as s:
        job = visible_job(s, user, job_id)
        if JobState(job.state).finished:
            raise ConflictError(f"Job {job_id} has already ended ({job.state}).")
        audit(s, user.id, "cancel_job", "job", str(job_id))
    svc.engine.cancel(job_id)
    return get_job(svc, user, job_id)
