"""Operator keys (integration keys bound to no project) and Pinpoint app tags.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_keys") as batch:
        batch.alter_column("project_id", existing_type=sa.BigInteger(), nullable=True)
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("tags", sa.JSON, nullable=True))
