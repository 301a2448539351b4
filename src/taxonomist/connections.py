"""The servers Taxonomist talks to, where each points and whether it answers.

Five parts, each local by default and a server by one setting: the metadata database
(``TAXONOMIST_DATABASE_URL``), MLflow tracking (``TAXONOMIST_MLFLOW_TRACKING_URI``), the
artifact store (``TAXONOMIST_ARTIFACTS_URI``), the Dask scheduler (``TAXONOMIST_DASK_ADDRESS``)
and Qdrant (``TAXONOMIST_QDRANT_URL``). ``taxonomist doctor`` checks them all; the service's
``/ready`` checks the servers among them. Every check ends within its timeout: a wrong address
says so in seconds, it never hangs a start-up or a probe.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from taxonomist.config import Settings

PARTS = ("database", "tracking", "artifacts", "dask", "qdrant")


@dataclass(frozen=True)
class PartStatus:
    """One part: its setting, where it points (no password shown), whether it answered."""

    part: str
    setting: str
    points_to: str
    ok: bool
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact(url: str) -> str:
    """``url`` with its password (and a token in its query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _database(settings: Settings, timeout: float) -> str:
    from taxonomist.store import Database

    db = Database(settings.database, connect_timeout=timeout)
    try:
        db.ping()
        revision = db.revision()
    finally:
        db.dispose()
    return f"{db.dialect}, schema {revision or 'not created yet (the service creates it)'}"


def _tracking(settings: Settings, timeout: float) -> str:
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        import httpx

        base = uri.rstrip("/")
        health = httpx.get(f"{base}/health", timeout=timeout)
        health.raise_for_status()
        found = httpx.get(
            f"{base}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout,
        )
        found.raise_for_status()  # a 401/403 here: credentials (MLFLOW_TRACKING_USERNAME ...)
        return "tracking server answers"
    if uri.startswith("sqlite:"):
        from pathlib import Path

        from sqlalchemy import create_engine, text

        if not Path(uri.split("///", 1)[-1]).exists():
            return "local sqlite store (created by the first training)"

        engine = create_engine(uri, connect_args={"timeout": timeout})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
        return "local sqlite store"
    return "not checked (a store MLflow reaches itself)"


def _artifacts(settings: Settings, timeout: float) -> str:
    if not settings.artifacts_uri:
        folder = settings.artifacts_dir
        return f"local folders under {settings.home}" + ("" if folder.exists() else " (not yet)")
    from taxonomist.store.files import s3_client, split_s3

    bucket, prefix = split_s3(settings.artifacts_uri)
    client = s3_client(connect_timeout=timeout, read_timeout=timeout)
    client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)  # reads and lists
    return f"bucket {bucket} at {client.meta.endpoint_url}"


def _dask(settings: Settings, timeout: float) -> str:
    if not settings.dask_address:
        return "a LocalCluster the service starts (1 worker process)"
    from distributed import Client

    with Client(settings.dask_address, timeout=timeout) as client:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
    if not workers:
        raise RuntimeError("the scheduler answers but has no worker: start 'dask worker'")
    return f"{len(workers)} worker(s), {threads} thread(s)"


def _qdrant(settings: Settings, timeout: float) -> str:
    if not settings.qdrant_url:
        return f"Qdrant Edge in the service process, under {settings.home / 'retrieval'}"
    from qdrant_client import QdrantClient

    client = QdrantClient(url=settings.qdrant_url, timeout=max(1, int(timeout)))
    try:
        n = len(client.get_collections().collections)
    finally:
        client.close()
    return f"server answers, {n} collection(s)"


CHECKS: dict[str, tuple[str, Callable[[Settings], str], Callable[[Settings, float], str]]] = {
    "database": ("TAXONOMIST_DATABASE_URL", lambda s: s.database, _database),
    "tracking": ("TAXONOMIST_MLFLOW_TRACKING_URI", lambda s: s.mlflow_tracking_uri, _tracking),
    "artifacts": (
        "TAXONOMIST_ARTIFACTS_URI",
        lambda s: s.artifacts_uri or str(s.artifacts_dir),
        _artifacts,
    ),
    "dask": ("TAXONOMIST_DASK_ADDRESS", lambda s: s.dask_address or "local", _dask),
    "qdrant": ("TAXONOMIST_QDRANT_URL", lambda s: s.qdrant_url or "edge (in-process)", _qdrant),
}


def is_server(settings: Settings, part: str) -> bool:
    """Whether ``part`` points at a server (rather than a file or folder of the home)."""
    return {
        "database": bool(settings.database_url) and not settings.database.startswith("sqlite"),
        "tracking": settings.mlflow_tracking_uri.startswith(("http://", "https://")),
        "artifacts": bool(settings.artifacts_uri),
        "dask": bool(settings.dask_address),
        "qdrant": bool(settings.qdrant_url),
    }[part]


def check(settings: Settings, part: str, timeout: float = 5.0) -> PartStatus:
    """Check one part; never raises, never takes (much) longer than ``timeout``."""
    setting, where, probe = CHECKS[part]
    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"check-{part}")
    try:
        detail, ok = pool.submit(probe, settings, timeout).result(timeout=timeout + 1), True
    except concurrent.futures.TimeoutError:
        detail, ok = (
            f"no answer within {timeout:.0f} s: is the address right and the server up?",
            False,
        )
    except Exception as exc:  # any failure is this part's answer
        detail, ok = _reason(exc), False
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return PartStatus(
        part, setting, redact(where(settings)), ok, detail, round(time.monotonic() - started, 3)
    )


def check_all(
    settings: Settings, parts: tuple[str, ...] = PARTS, timeout: float = 5.0
) -> list[PartStatus]:
    """:func:`check` of each of ``parts``, at the same time."""
    if not parts:
        return []
    with concurrent.futures.ThreadPoolExecutor(len(parts)) as pool:
        return list(pool.map(lambda p: check(settings, p, timeout), parts))


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{exc.__class__.__name__}: {first}"[:300]
