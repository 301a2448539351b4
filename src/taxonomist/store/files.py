"""Where stored files live: uploaded datasets and the new rows of a retrain.

On one box a file stays in ``TAXONOMIST_HOME`` and its location is its path. With
``TAXONOMIST_ARTIFACTS_URI=s3://bucket/prefix`` it is also put in the bucket and its location
is the object's URI, so a Dask worker or a sibling service process on another machine reads
it without a shared file system: :meth:`FileStore.local` downloads it once into this
machine's home (same file name: the upload sweep and a zip's unpacked folder work the same)
and reads that copy after. Endpoint and credentials are boto3's own (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, a profile or an instance role).
"""

from __future__ import annotations

import logging
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from taxonomist.config import Settings
from taxonomist.errors import NotFoundError, ServiceUnavailableError

logger = logging.getLogger(__name__)


def s3_client(*, connect_timeout: float = 5.0, read_timeout: float = 60.0) -> Any:
    """A boto3 S3 client configured the boto3 way, with timeouts: a wrong endpoint fails in
    seconds instead of hanging a request or a start-up."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.session.Session().client("s3", config=config)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def s3_failure(exc: Exception, what: str) -> ServiceUnavailableError:
    """A 503 that says which S3 call failed and what to check."""
    return ServiceUnavailableError(
        f"The artifact store (TAXONOMIST_ARTIFACTS_URI) failed to {what}: "
        f"{exc.__class__.__name__}: {exc}. Check AWS_ENDPOINT_URL and the credentials.",
    )


class FileStore:
    """Put, find and delete stored files in one place: ``folder`` under home, mirrored to
    ``settings.artifacts_uri``'s ``prefix`` when one is set."""

    def __init__(self, settings: Settings, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.remote = f"{settings.artifacts_uri}/{prefix}" if settings.artifacts_uri else None

    @cached_property
    def _s3(self) -> Any:
        return s3_client()

    def publish(self, local: Path) -> str:
        """Store ``local`` (a file in :attr:`folder`); its location, to keep in a row."""
        if self.remote is None:
            return str(local)
        uri = f"{self.remote}/{local.name}"
        bucket, key = split_s3(uri)
        try:
            self._s3.upload_file(str(local), bucket, key)
        except Exception as exc:  # botocore's errors have no common base worth naming
            raise s3_failure(exc, f"store {local.name}") from exc
        return uri

    def local(self, location: str) -> Path:
        """A path on this machine holding the file at ``location`` (downloaded once)."""
        if not location.startswith("s3://"):
            path = Path(location)
            if not path.exists():
                raise NotFoundError(f"The stored file {path.name} is gone from {path.parent}.")
            return path
        bucket, key = split_s3(location)
        path = self.folder / Path(key).name
        if path.exists():
            return path
        self.folder.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            self._s3.download_file(bucket, key, str(part))
        except Exception as exc:
            part.unlink(missing_ok=True)
            if _missing(exc):
                raise NotFoundError(f"The stored file {location} is gone from the bucket.") from exc
            raise s3_failure(exc, f"read {location}") from exc
        part.replace(path)  # atomic: a reader sees the whole file or none
        return path

    def delete(self, location: str) -> None:
        """Remove the file: this machine's copy, and the object when it is in a bucket
        (a failure there is logged: the row is gone already)."""
        from taxonomist.data.archive import remove_unpacked

        remote = location.startswith("s3://")
        path = self.folder / Path(split_s3(location)[1]).name if remote else Path(location)
        path.unlink(missing_ok=True)
        remove_unpacked(path)  # a zip's table and images
        if remote:
            bucket, key = split_s3(location)
            try:
                self._s3.delete_object(Bucket=bucket, Key=key)
            except Exception as exc:
                logger.warning("could not delete %s from the bucket: %s", location, exc)


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def dataset_files(settings: Settings) -> FileStore:
    """The uploaded datasets' store (``home/datasets``, ``<artifacts_uri>/datasets``)."""
    return FileStore(settings, settings.datasets_dir, "datasets")


def retrain_files(settings: Settings) -> FileStore:
    """The new rows retrain jobs read (``home/retrain``, ``<artifacts_uri>/retrain``)."""
    return FileStore(settings, settings.home / "retrain", "retrain")
