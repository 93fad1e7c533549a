"""The runs table: one row per run, the highest version history was sent.

This is also the schema the service created before it had migrations, so a database
from that time is stamped with this revision instead of being created again.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("task", sa.String(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("queued", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("execute_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("rate_limit_attempt", sa.Integer(), nullable=False),
        sa.Column("from_run_id", sa.String(), nullable=False),
        sa.Column("root_run_id", sa.String(), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("result", _json(), nullable=True),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_traceback", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("trace_context", _json(), nullable=False),
        sa.Column("worker_id", sa.String(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_state", "runs", ["state"])
    op.create_index("ix_runs_queued_id", "runs", ["queued", "id"])
    op.create_index("ix_runs_task_queued_id", "runs", ["task", "queued", "id"])
    if op.get_context().dialect.name == "postgresql":
        op.create_index(
            "ix_runs_params_gin",
            "runs",
            ["params"],
            postgresql_using="gin",
            postgresql_ops={"params": "jsonb_path_ops"},
        )
        op.create_index("ix_runs_tags_gin", "runs", ["tags"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("runs")
