"""Retrieval as the service offers it: QA datasets, and retrieval models owned by the user who
built them (members see and change their own, admins all of them; someone else's model looks
like a missing one). The models themselves, their store and their jobs' work are the library's
:class:`~taxonomist.retrieval.service.RetrievalService`, which knows nothing of users.

A model name is taken from the moment its build is queued (the build's job row reserves it)
until that job ends: a second build of the name is refused meanwhile, even with
``replace=true`` and even for its owner (``replace`` replaces a finished model). Someone
else's name, built or being built, is "taken" and nothing more, as with training's model
names; the build checks again, just before it writes, that the model it replaces may be
replaced by its submitter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from sqlalchemy import select

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
from taxonomist.data.parse_pool import ParsePool
from taxonomist.errors import ConflictError, InvalidParameterError, NotFoundError
from taxonomist.retrieval.corpus import explore, load_qa
from taxonomist.retrieval.model import Guard, check_model_id
from taxonomist.retrieval.service import load_dataset
from taxonomist.store import UNFINISHED, Dataset, Job, User
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


def describe_qa(
    path: Path,
    context: str,
    question: str,
    answer: str | None,
    *,
    parser: ParsePool | None = None,
) -> dict[str, Any]:
    """Load and validate a QA file (SQuAD JSON, or a table with the named columns; in
    ``parser``'s workers, without one in this process) and explore it: the dataset row's
    fields."""
    if parser is None:
        qa = load_qa(path, context=context, question=question, answer=answer or None)
    else:
        qa = parser.run(load_qa, path, context=context, question=question, answer=answer or None)
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
        lambda path: describe_qa(path, context, question, answer, parser=svc.parser),
        "upload_qa_dataset",
    )
    report = fields["report"]
    return QAUploaded(dataset=out, report=report, warnings=report.get("warnings", []))


def start_map(svc: Services, user: Principal, ds: Dataset, body: RetrievalMap) -> JobOut:
    """A job placing a sample of the dataset's passages and questions on a t-SNE map."""
    work = svc.retrieval.map_work(svc.files.local(ds.path), dict(ds.roles), body.sample)
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


def name_taken(model_id: str) -> ConflictError:
    """The 409 for a name that is not the caller's: it says no more than that (not whose, not
    whether it is built or being built)."""
    return ConflictError(f"The retrieval model name '{model_id}' is taken; choose another.")


def check_new_name(
    svc: Services, user: Principal, model_id: str, replace: bool, building: Job | None
) -> dict[str, Any] | None:
    """Refuse (409) a name being built (``building``: its job), a name someone else's model
    has, or an existing one unless ``replace``; the metadata of the model a build of the name
    would replace (None if none)."""
    check_model_id(model_id)
    if building is not None:
        ours = {building.owner_id, building.config.get("owner_id")}
        if not user.is_admin and user.id not in ours:
            raise name_taken(model_id)
        raise ConflictError(
            f"The retrieval model name '{model_id}' is being built by job {building.id}: wait "
            f"for it to end (GET /api/v1/jobs/{building.id}) or cancel it, then submit again."
        )
    meta = svc.retrieval.meta(model_id)
    if meta is None:
        return None
    if not user.is_admin and meta.get("owner_id") != user.id:
        raise name_taken(model_id)
    if not replace:
        raise ConflictError(
            f"A retrieval model named '{model_id}' exists: choose another name, or pass "
            "replace=true to build it again."
        )
    return meta


def may_replace(svc: Services, user_id: int, model_id: str) -> Guard:
    """The build's last check before it writes: a member replaces only their own model, an
    admin (still one when the build ends) anyone's; the job fails with a 409's message
    otherwise."""

    def guard(current: dict[str, Any] | None) -> None:
        if current is None or current.get("owner_id") == user_id:
            return
        with svc.db.session() as s:
            user = s.get(User, user_id)
            if user is not None and user.is_admin and not user.disabled:
                return
        raise name_taken(model_id)

    return guard


# -- models: the work -------------------------------------------------------------------------
def start_build(svc: Services, user: Principal, body: RetrievalBuild) -> JobOut:
    """A job building (or rebuilding) a retrieval model from a QA dataset the user sees; the
    model is saved only when whole, owned by the user (an admin's rebuild keeps its owner).
    The name is reserved by the job from now until it ends."""
    ds = qa_dataset(svc, user, body.dataset_id)
    with svc.retrieval.reserving(body.name) as building:
        old = check_new_name(svc, user, body.name, body.replace, building)
        owner_id: int = user.id
        owner: str | None = user.username
        if old is not None and old.get("owner_id") is not None:
            owner_id, owner = old["owner_id"], old.get("owner")
        info = {
            "owner_id": owner_id,
            "owner": owner,
            "dataset_id": body.dataset_id,
            "dataset": ds.name,
        }
        work = svc.retrieval.build_work(
            body.name,
            svc.files.local(ds.path),
            dict(ds.roles),
            body.params,
            info,
            body.replace,
            guard=may_replace(svc, user.id, body.name),
        )
        config = {**body.model_dump(mode="json"), "owner_id": owner_id}
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
    """Remove a model; refused (409) while a quality test of it is queued or running (it
    would load the model back half-removed)."""
    with svc.db.session() as s:
        testing = s.scalar(
            select(Job.id).where(
                Job.kind == "retrieval_evaluate",
                Job.state.in_(UNFINISHED),
                Job.config["model"].as_string() == meta["id"],
            )
        )
    if testing is not None:
        raise ConflictError(
            f"Job {testing} is testing the retrieval model '{meta['id']}': wait for it "
            f"(GET /api/v1/jobs/{testing}) or cancel it, then remove the model."
        )
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
    dataset = load_dataset(svc.files.local(ds.path), dict(ds.roles))
    result = svc.retrieval.benchmark(meta["id"], dataset, body.n, body.k)
    return RetrievalBenchmark(model=meta["id"], dataset_id=body.dataset_id, **result)


def start_evaluate(
    svc: Services, user: Principal, meta: dict[str, Any], body: RetrievalDatasetRef
) -> JobOut:
    """A job measuring top-1, top-5 and MRR@10 over every question of a QA dataset."""
    ds = qa_dataset(svc, user, body.dataset_id)
    work = svc.retrieval.evaluate_work(meta["id"], svc.files.local(ds.path), dict(ds.roles))
    config = {"model": meta["id"]}
    return start_service_job(svc, user, "retrieval_evaluate", body.dataset_id, config, work)
