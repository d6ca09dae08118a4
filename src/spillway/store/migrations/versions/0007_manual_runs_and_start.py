"""Run-now runs of their own, and where an export starts.

``runs``: the unique (export_id, kind, window_end) constraint made two run-nows in one second
one run (the second request was answered with the id of a run never stored). It becomes a
unique index that leaves manual runs out: scheduled windows and backfills are still queued once,
while every run-now is a run of its own (its files are named by its sequence range, so they can
never collide with another run's).

``exports``: ``start`` is what the export was created with (``now``, ``retention`` or epoch
seconds as text); ``start_at`` the receive time (epoch ms) it covers from (NULL for exports made
before: they started at their ``created_at``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NOT_MANUAL = "kind <> 'manual'"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_export_id_kind_window_end", type_="unique")
    op.create_index(
        "uq_runs_export_id_kind_window_end",
        "runs",
        ["export_id", "kind", "window_end"],
        unique=True,
        sqlite_where=sa.text(NOT_MANUAL),
        postgresql_where=sa.text(NOT_MANUAL),
    )
    op.add_column(
        "exports", sa.Column("start", sa.String(16), nullable=False, server_default="now")
    )
    op.add_column("exports", sa.Column("start_at", sa.BigInteger, nullable=True))
