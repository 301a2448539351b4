"""Dataset ids are never reused (SQLite): a deleted dataset's id stays its own.

Without ``AUTOINCREMENT`` SQLite gives a new row the largest id + 1, so deleting the newest
dataset hands its id to the next upload, and a model version or job that named the old one
would name someone else's. PostgreSQL's sequences never go back: nothing to do there.

The table is rebuilt (SQLite cannot add ``AUTOINCREMENT`` in place). Dropping the old table
runs its foreign keys' actions (``jobs.dataset_id`` is ``SET NULL``), so the jobs' links are
read first and written back after.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    links = bind.execute(
        sa.text("SELECT id, dataset_id FROM jobs WHERE dataset_id IS NOT NULL")
    ).all()
    with op.batch_alter_table(
        "datasets", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    for job_id, dataset_id in links:
        bind.execute(
            sa.text("UPDATE jobs SET dataset_id = :d WHERE id = :j"), {"d": dataset_id, "j": job_id}
        )


def downgrade() -> None:
    pass  # AUTOINCREMENT only stops reuse: the schema is the same without it
