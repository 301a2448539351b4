"""The metadata database: users, tokens, datasets, jobs, the audit log, the prediction log and
monitoring (drift reports, the retraining journal, policies).

SQLAlchemy 2 tables with Alembic migrations; SQLite (WAL) under ``TAXONOMIST_HOME`` by default,
PostgreSQL by ``TAXONOMIST_DATABASE_URL``.
"""

from taxonomist.store.db import Database
from taxonomist.store.tables import (
    UNFINISHED,
    ApiToken,
    AuditEntry,
    Base,
    Dataset,
    DriftReport,
    Job,
    JobState,
    ModelOwner,
    MonitorPolicy,
    Prediction,
    RetrainEntry,
    Role,
    User,
)

__all__ = [
    "UNFINISHED",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Database",
    "Dataset",
    "DriftReport",
    "Job",
    "JobState",
    "ModelOwner",
    "MonitorPolicy",
    "Prediction",
    "RetrainEntry",
    "Role",
    "User",
]
