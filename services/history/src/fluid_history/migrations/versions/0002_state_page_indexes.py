"""Indexes that serve a page of one state, of one task or of all tasks, in page order.

With only an index on ``state``, PostgreSQL either walked the newest runs filtering
out every other state or fetched all runs of the state and sorted them; on a million
runs, a page of a 1% state cost tens of milliseconds. Plain ascending indexes suffice:
the newest-first page order is a backward scan.

Building them blocks writes to ``runs`` for the build's duration (seconds per million
runs): the dispatcher's outbox holds the states meanwhile, so nothing is lost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_task_state_queued_id", "runs", ["task", "state", "queued", "id"])
    op.create_index("ix_runs_state_queued_id", "runs", ["state", "queued", "id"])
    op.drop_index("ix_runs_state", "runs")


def downgrade() -> None:
    op.create_index("ix_runs_state", "runs", ["state"])
    op.drop_index("ix_runs_state_queued_id", "runs")
    op.drop_index("ix_runs_task_state_queued_id", "runs")
