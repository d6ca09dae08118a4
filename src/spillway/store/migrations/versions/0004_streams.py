"""Stream exports: delivery counters and the dead-letter table.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_state",
        sa.Column("export_id", sa.String(32), nullable=False),
        sa.Column("inflight_to", sa.BigInteger, nullable=False),
        sa.Column("records_sent", sa.BigInteger, nullable=False),
        sa.Column("records_retried", sa.BigInteger, nullable=False),
        sa.Column("dead_lettered", sa.BigInteger, nullable=False),
        sa.Column("redelivered", sa.BigInteger, nullable=False),
        sa.Column("last_sent_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("export_id", name="pk_stream_state"),
        sa.ForeignKeyConstraint(
            ["export_id"], ["exports.id"], name="fk_stream_state_export_id_exports"
        ),
    )
    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("export_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("event_uuid", sa.String(36), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.ForeignKeyConstraint(
            ["export_id"], ["exports.id"], name="fk_dead_letters_export_id_exports"
        ),
        sa.UniqueConstraint("export_id", "seq", name="uq_dead_letters_export_id_seq"),
    )
