"""Uploaded files to disk in chunks, never whole in memory, and never over the size limit;
read as tables in the service's parse workers (:class:`~taxonomist.data.parse_pool.ParsePool`)."""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from fastapi import UploadFile

from taxonomist.config import Settings
from taxonomist.errors import PayloadTooLargeError, TaxonomistError

if TYPE_CHECKING:
    from taxonomist.api.services.state import Services

CHUNK = 1 << 20
_SUFFIX = re.compile(r"(\.(csv|tsv|txt|parquet|pq|jsonl|ndjson|json))(\.gz)?$", re.I)


def upload_limit(settings: Settings) -> int:
    """The largest upload accepted, in bytes (``TAXONOMIST_MAX_UPLOAD_MB``)."""
    return int(settings.max_upload_mb * 1e6)


def save_upload(upload: UploadFile, folder: Path, limit: int) -> tuple[Path, int, str]:
    """Copy the upload to ``folder`` in 1 MB chunks; return its path, size and SHA-256. A
    file over ``limit`` bytes is refused (413) and nothing is left behind."""
    name = upload.filename or "upload.csv"
    match = _SUFFIX.search(name)
    suffix = match.group(0).lower() if match else Path(name).suffix.lower()[:10]
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{uuid.uuid4().hex}{suffix}.part"
    digest, size = hashlib.sha256(), 0
    try:
        with part.open("wb") as out:
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"The file is larger than the upload limit of {limit / 1e6:.0f} MB. "
                        "Upload a sample, or raise TAXONOMIST_MAX_UPLOAD_MB.",
                        details={"limit_bytes": limit},
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    final = part.with_name(part.name.removesuffix(".part"))
    part.rename(final)
    return final, size, digest.hexdigest()


def uploaded_table(svc: Services, upload: UploadFile) -> pd.DataFrame:
    """The uploaded file as a table (streamed to a temporary file, parsed in a parse worker,
    then removed)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = save_upload(upload, Path(tmp), upload_limit(svc.settings))
        try:
            return svc.parser.load(path)
        except TaxonomistError as exc:
            raise as_uploaded(exc, path, upload.filename) from None


def as_uploaded(exc: TaxonomistError, path: Path, filename: str | None) -> TaxonomistError:
    """``exc`` with the stored copy's name (a random one, in a server folder) replaced by the
    name the user uploaded the file under."""
    if filename:
        shown = Path(filename).name
        for stored in (str(path), path.name):
            exc.message = exc.message.replace(stored, shown)
        exc.details = {
            k: (v.replace(str(path), shown).replace(path.name, shown) if isinstance(v, str) else v)
            for k, v in exc.details.items()
        }
    return exc
