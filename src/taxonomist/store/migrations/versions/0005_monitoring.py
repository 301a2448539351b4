"""Monitoring: stored drift reports, the retraining journal and retraining policies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("n_reference", sa.Integer, nullable=False),
        sa.Column("n_current", sa.Integer, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_index("ix_drift_reports_model_id", "drift_reports", ["model", "id"])
    op.create_table(
        "retrain_journal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("champion_version", sa.Integer, nullable=True),
        sa.Column("challenger_version", sa.Integer, nullable=True),
        sa.Column("entry", sa.JSON, nullable=False),
    )
    op.create_index("ix_retrain_journal_model_id", "retrain_journal", ["model", "id"])
    op.create_table(
        "monitor_policies",
        sa.Column("model", sa.String(100), primary_key=True),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Integer, nullable=True),
        sa.Column("last_checked", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("monitor_policies")
    op.drop_table("retrain_journal")
    op.drop_table("drift_reports")
