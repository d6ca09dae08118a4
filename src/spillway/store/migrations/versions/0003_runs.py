"""Export scheduling state and runs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exports") as batch:
        batch.add_column(sa.Column("start_seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_window_end", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.BigInteger, nullable=True))
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("export_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("range_start_ms", sa.BigInteger, nullable=True),
        sa.Column("range_end_ms", sa.BigInteger, nullable=True),
        sa.Column("seq_from", sa.BigInteger, nullable=True),
        sa.Column("seq_to", sa.BigInteger, nullable=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("duration_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(["export_id"], ["exports.id"], name="fk_runs_export_id_exports"),
        sa.UniqueConstraint(
            "export_id", "kind", "window_end", name="uq_runs_export_id_kind_window_end"
        ),
    )
    op.create_index("ix_runs_export_id_status", "runs", ["export_id", "status"])
