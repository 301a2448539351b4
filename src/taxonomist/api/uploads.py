"""Uploaded files to disk in chunks, and plain-JSON conversion of reports."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from taxonomist.errors import PayloadTooLargeError

CHUNK = 1 << 20
_SUFFIX = re.compile(r"(\.(csv|tsv|txt|parquet|pq|jsonl|ndjson|json))(\.gz)?$", re.I)


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def refuse_declared_oversize(request: Any, limit: int) -> None:
    """A 413 before reading a body whose declared length is over the limit."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + CHUNK:
        raise PayloadTooLargeError(
            f"The upload ({declared / 1e6:.0f} MB) is larger than the limit of "
            f"{limit / 1e6:.0f} MB. Upload a sample, or raise TAXONOMIST_MAX_UPLOAD_MB.",
            details={"limit_bytes": limit},
        )


def save_upload(upload: UploadFile, folder: Path, limit: int) -> tuple[Path, int, str]:
    """Copy the upload to ``folder`` in 1 MB chunks (never whole in memory)."""
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
