"""The metadata database: users, tokens, datasets, jobs, the audit log and the prediction log.

SQLAlchemy 2 tables with Alembic migrations; SQLite (WAL) under ``TAXONOMIST_HOME`` by default,
PostgreSQL by ``TAXONOMIST_DATABASE_URL``.
"""

from taxonomist.store.db import Database
from taxonomist.store.tables import (
    ApiToken,
    AuditEntry,
    Base,
    Dataset,
    Job,
    JobState,
    ModelOwner,
    Prediction,
    Role,
    User,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Database",
    "Dataset",
    "Job",
    "JobState",
    "ModelOwner",
    "Prediction",
    "Role",
    "User",
]
