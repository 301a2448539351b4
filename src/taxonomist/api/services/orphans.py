"""Upload files a killed service left in the data folder, removed when the service starts.

An upload is copied to ``<hex>.<suffix>.part``, renamed, checked and profiled, and only then
given its dataset row: a ``kill -9`` on the way leaves a file that no row refers to. While it
is stored, an upload holds a shared lock on ``datasets.lock`` beside the folder (the folder
holds datasets only). The sweep takes that lock exclusively without waiting, so it never
removes the file of an upload under way in another process (``serve --workers N``, the demo):
it leaves the folder for the next start when one is. The kernel drops the locks of a killed
process, so a dead upload holds nothing.

``fcntl.flock`` rather than a library: ``filelock`` has no shared lock, and a shared and
exclusive pair that dies with its holder is all that is needed (POSIX only, as the service).
"""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from taxonomist.store import Database, Dataset

logger = logging.getLogger(__name__)


def _lock_file(folder: Path) -> Path:
    return folder.with_name(f"{folder.name}.lock")


@contextmanager
def upload_in_progress(folder: Path) -> Iterator[None]:
    """Hold off :func:`sweep_uploads` on ``folder`` (in every process) until the block ends:
    wrap writing an upload's file and committing its row."""
    folder.mkdir(parents=True, exist_ok=True)
    with _lock_file(folder).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield  # closing the file releases the lock


def sweep_uploads(folder: Path, db: Database) -> list[Path]:
    """Delete the files in ``folder`` that no dataset row refers to (by file name: the folder
    may be mounted elsewhere on another host); the deleted paths. Nothing is deleted while
    an upload is in progress in any process (see :func:`upload_in_progress`)."""
    if not folder.is_dir():
        return []
    with _lock_file(folder).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("uploads in progress in %s: left-over files are swept next start", folder)
            return []
        with db.session() as s:
            kept = {Path(p).name for p in s.scalars(select(Dataset.path))}
        orphans = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name not in kept]
        for path in orphans:
            path.unlink(missing_ok=True)
        # what a zip's table and images were unpacked into (data/archive.py)
        unpacked = [
            p
            for p in sorted(folder.iterdir())
            if p.is_dir()
            and (p.name.startswith(".unpack-") or p.name.endswith(".zip.d"))
            and p.name.removesuffix(".d") not in kept
        ]
        for path in unpacked:
            shutil.rmtree(path, ignore_errors=True)
        orphans += unpacked
    if orphans:
        logger.warning(
            "removed %d upload file(s) a stopped service left half-stored in %s: %s",
            len(orphans),
            folder,
            ", ".join(p.name for p in orphans),
        )
    return orphans
