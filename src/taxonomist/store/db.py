"""Engine, sessions and migrations for the metadata database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from taxonomist.errors import TaxonomistError

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 7_270_102  # PostgreSQL advisory lock: one process migrates at a time


class DatabaseError(TaxonomistError):
    code = "database_unavailable"
    status = 503


class Database:
    """One database: ``migrate()`` it once, then work in ``session()`` blocks.

    SQLite gets WAL journaling (readers never block the writer), foreign keys and a busy
    timeout, so the API and the training workers can share one file.
    """

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif url.startswith("postgresql"):  # a wrong host fails in seconds, not minutes
            kwargs["connect_args"] = {"connect_timeout": max(1, int(connect_timeout))}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions() as s, s.begin():
            yield s

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision``, by default the newest (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        # One process at a time (the workers of `serve --workers N`, API processes started
        # together): the second finds the schema done instead of creating it twice.
        with self._migration_lock(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def _migration_lock(self) -> Any:
        """A file lock beside a SQLite database file; nothing for other databases (their
        migration holds an advisory lock in its transaction)."""
        from contextlib import nullcontext

        from filelock import FileLock

        path = self.url.split("///", 1)[-1] if self.url.startswith("sqlite") else ""
        if not path or path == ":memory:":
            return nullcontext()
        return FileLock(f"{path}.migrate.lock", timeout=120)

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:  # no table yet means no revision
                return None

    def ping(self) -> None:
        """Raise :class:`DatabaseError` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means unreachable
            why = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise DatabaseError(
                f"The metadata database ({self.engine.url.render_as_string()}) does not "
                f"answer: {exc.__class__.__name__}"
                + (f" ({why[0][:200]})" if why else "")
                + ". Check TAXONOMIST_DATABASE_URL."
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
