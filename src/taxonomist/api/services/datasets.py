"""Datasets: store an upload (file, checks, profile, row: all or nothing), decide who sees which
dataset, change and delete one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from taxonomist.api.schemas import DatasetOut, DatasetUpdate, DatasetUploaded
from taxonomist.api.services.jsonable import jsonable
from taxonomist.api.services.orphans import upload_in_progress
from taxonomist.api.services.state import Principal, Services
from taxonomist.api.services.uploads import as_uploaded, save_upload, upload_limit
from taxonomist.config import Settings
from taxonomist.data import (
    ColumnRole,
    infer_column_roles,
    load_table,
    profile_table,
    validate_training_table,
)
from taxonomist.data.archive import data_folder
from taxonomist.data.parse_pool import ParsePool
from taxonomist.errors import (
    ColumnNotFoundError,
    ConflictError,
    InvalidParameterError,
    NotFoundError,
    TaxonomistError,
)
from taxonomist.models.table_check import check_images
from taxonomist.store import UNFINISHED, Database, Dataset, Job
from taxonomist.store.accounts import audit
from taxonomist.store.files import dataset_files

Describe = Callable[[Path], dict[str, Any]]


# -- who sees what ----------------------------------------------------------------------------
def visible_dataset(s: Session, user: Principal, dataset_id: int) -> Dataset:
    """The dataset row in session ``s`` when ``user`` may see it (theirs, or any for an admin);
    a 404 otherwise: someone else's dataset looks like a missing one."""
    ds = s.get(Dataset, dataset_id)
    if ds is None or (not user.is_admin and ds.owner_id != user.id):
        raise NotFoundError(f"No dataset with id {dataset_id} is visible to you.")
    return ds


def find_visible(svc: Services, user: Principal, dataset_id: int) -> Dataset:
    """:func:`visible_dataset` in a session of its own (the row comes back detached)."""
    with svc.db.session() as s:
        return visible_dataset(s, user, dataset_id)


def list_visible(svc: Services, user: Principal, kind: str) -> list[DatasetOut]:
    """The datasets of one kind (table, qa) the user may see, oldest first."""
    with svc.db.session() as s:
        q = select(Dataset).where(Dataset.kind == kind).order_by(Dataset.id)
        if not user.is_admin:
            q = q.where(Dataset.owner_id == user.id)
        return [DatasetOut.model_validate(d) for d in s.scalars(q)]


# -- storing an upload ------------------------------------------------------------------------
def describe_table(
    path: Path,
    target: str | None,
    roles: Mapping[str, str] | None,
    *,
    parser: ParsePool | None = None,
) -> dict[str, Any]:
    """Load (in ``parser``'s workers; without one in this process), infer roles, validate
    (for training when a target is given) and profile: the dataset row's fields."""
    df = parser.load(path) if parser is not None else load_table(path)
    schema = infer_column_roles(df, target, dict(roles) if roles else None)
    n_rows, n_columns = len(df), len(df.columns)
    if target:
        images = check_images(df, schema, data_folder(path))  # a zip's, named per row
        df, schema, report = validate_training_table(df, schema)
        report.warnings += images
        report_dict = report.to_dict()
    else:
        report_dict = {
            "n_rows": n_rows,
            "n_rows_used": n_rows,
            "n_classes": None,
            "warnings": ["No target chosen yet: pick one (PATCH the dataset) before training."],
        }
    return {
        "n_rows": n_rows,
        "n_columns": n_columns,
        "target": target,
        "roles": schema.to_dict()["roles"],
        "report": jsonable(report_dict),
        "profile": jsonable(profile_table(df, schema).to_dict()),
    }


def store_upload(
    svc: Services,
    user: Principal,
    file: UploadFile,
    name: str | None,
    describe: Describe,
    action: str,
) -> tuple[DatasetOut, dict[str, Any]]:
    """Stream an upload to disk, ``describe`` it (validate, profile: the dataset's fields) and
    store the row; a file that fails any step is deleted: nothing half-stored."""
    return store_file(svc.settings, svc.db, user.id, file, name, describe, action)


def store_file(
    settings: Settings,
    db: Database,
    owner_id: int,
    file: UploadFile,
    name: str | None,
    describe: Describe,
    action: str,
) -> tuple[DatasetOut, dict[str, Any]]:
    """:func:`store_upload` for any file-like upload (the demo stores its sample tables with
    it): the file is copied into the data folder, described, put in the artifact store when
    it is S3, and its row written."""
    files = dataset_files(settings)
    # Held until the row is committed: the start-up sweep of files without a row
    # (orphans.sweep_uploads) leaves this one alone.
    with upload_in_progress(settings.datasets_dir):
        path, size, sha = save_upload(file, settings.datasets_dir, upload_limit(settings))
        location = str(path)
        try:
            try:
                fields = describe(path)
            except TaxonomistError as exc:
                raise as_uploaded(exc, path, file.filename) from None
            location = files.publish(path)
            with db.session() as s:
                ds = Dataset(
                    owner_id=owner_id,
                    name=name or Path(file.filename or "dataset").name,
                    filename=Path(file.filename or path.name).name,
                    path=location,
                    size_bytes=size,
                    sha256=sha,
                    **fields,
                )
                s.add(ds)
                s.flush()
                audit(s, owner_id, action, "dataset", str(ds.id), {"bytes": size})
                out = DatasetOut.model_validate(ds)
        except BaseException:
            path.unlink(missing_ok=True)
            files.delete(location)
            raise
    return out, fields


def upload_table(
    svc: Services,
    user: Principal,
    file: UploadFile,
    name: str | None,
    target: str | None,
    roles: Mapping[str, str] | None,
) -> DatasetUploaded:
    """Store an uploaded table, validated for training on ``target`` when one is given."""
    out, fields = store_upload(
        svc,
        user,
        file,
        name,
        lambda path: describe_table(path, target or None, roles, parser=svc.parser),
        "upload_dataset",
    )
    report = fields["report"]
    return DatasetUploaded(
        dataset=out, report=report, roles=fields["roles"], warnings=report.get("warnings", [])
    )


# -- changing one -----------------------------------------------------------------------------
def update_dataset(
    svc: Services, user: Principal, ds: Dataset, body: DatasetUpdate
) -> DatasetUploaded:
    """Rename, describe columns, or choose the target and roles (the table is validated and
    profiled again, outside the database session)."""
    if ds.kind == "qa" and (body.target is not None or body.roles is not None):
        raise InvalidParameterError(
            f"Dataset {ds.id} is a question-answer dataset: it has no target or roles "
            "to choose. Build a retrieval model on it (POST /api/v1/retrieval/models)."
        )
    path, target, roles, report = svc.files.local(ds.path), ds.target, None, ds.report
    inferred, columns = dict(ds.roles), list(ds.roles)
    unknown = sorted(set(body.descriptions or {}) - set(columns))
    if unknown:
        raise ColumnNotFoundError(
            f"Descriptions name columns the dataset does not have: {', '.join(unknown)}. "
            f"Its columns: {', '.join(columns)}.",
            details={"unknown": unknown, "columns": columns},
        )
    if body.target is not None:
        target = body.target or None
    if body.roles is not None:
        roles = {c: r for c, r in body.roles.items() if r != ColumnRole.TARGET}
    profile = None
    if body.target is not None or body.roles is not None:  # the table is validated again
        fields = describe_table(path, target, roles, parser=svc.parser)
        inferred, report, profile = fields["roles"], fields["report"], fields["profile"]
    with svc.db.session() as s:
        row = visible_dataset(s, user, ds.id)  # it may have gone meanwhile
        row.target, row.roles, row.report = target, inferred, report
        if profile is not None:
            row.profile = profile
        if body.name:
            row.name = body.name
        if body.descriptions is not None:
            row.descriptions = {**(row.descriptions or {}), **body.descriptions}
        audit(s, user.id, "update_dataset", "dataset", str(row.id), body.model_dump())
        out = DatasetOut.model_validate(row)
    return DatasetUploaded(
        dataset=out, report=report, roles=inferred, warnings=report.get("warnings", [])
    )


def text_map(svc: Services, ds: Dataset, column: str, sample: int) -> dict[str, Any]:
    """A 2-D map (t-SNE of TF-IDF) of a sample of one text column, coloured by the target."""
    from taxonomist.features.text_map import text_map as compute

    roles = dict(ds.roles)
    if roles.get(column) != ColumnRole.TEXT:
        texts = [c for c, r in roles.items() if r == ColumnRole.TEXT]
        raise InvalidParameterError(
            f"'{column}' is not a text column of dataset {ds.id}; its text columns: "
            f"{', '.join(texts) or 'none'}."
        )
    table = svc.parser.load(svc.files.local(ds.path))
    points = compute(table, column, ds.target, sample=sample, seed=svc.settings.seed)
    return {"column": column, "n": len(points), "points": jsonable(points.to_dict("records"))}


def stored_file(svc: Services, ds: Dataset) -> Path:
    """The file as uploaded, on this machine; a 404 when it is gone."""
    try:
        return svc.files.local(ds.path)
    except NotFoundError:
        raise NotFoundError(f"The file of dataset {ds.id} is gone from the data folder.") from None


def delete_dataset(svc: Services, user: Principal, ds: Dataset) -> None:
    """Delete the row, then the file; refused (409) while a job trains on it."""
    with svc.db.session() as s:
        row = visible_dataset(s, user, ds.id)
        busy = s.scalar(
            select(Job.id).where(
                Job.dataset_id == row.id,
                Job.state.in_(UNFINISHED),
            )
        )
        if busy is not None:
            raise ConflictError(f"Job {busy} is training on dataset {row.id}: cancel it or wait.")
        location = row.path
        s.delete(row)
        audit(s, user.id, "delete_dataset", "dataset", str(row.id))
    svc.files.delete(location)  # after the commit: a failed commit keeps the file
