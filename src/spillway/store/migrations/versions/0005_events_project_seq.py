"""Index events by (project_id, seq): every export and stream reads a project's events in
ingest order from its cursor.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_project_id_seq", "events", ["project_id", "seq"])
