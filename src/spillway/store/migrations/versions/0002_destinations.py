"""Destinations and exports.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("credentials_sealed", sa.LargeBinary, nullable=False),
        sa.Column("credentials_public", sa.JSON, nullable=False),
        sa.Column("credentials_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_validation", sa.JSON, nullable=True),
        sa.Column("validated_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_destinations"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_destinations_project_id_projects"
        ),
    )
    op.create_index("ix_destinations_project_id", "destinations", ["project_id"])
    op.create_table(
        "exports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("destination_id", sa.String(32), nullable=False),
        sa.Column("frequency", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("cursor_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_exports_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"], ["destinations.id"], name="fk_exports_destination_id_destinations"
        ),
    )
    op.create_index("ix_exports_project_id", "exports", ["project_id"])
    op.create_index("ix_exports_destination_id", "exports", ["destination_id"])
