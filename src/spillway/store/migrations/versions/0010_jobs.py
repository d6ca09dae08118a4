"""On-demand jobs: export and import of endpoints, users and event counts, in pieces.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("what", sa.String(32), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("snapshot_at", sa.BigInteger, nullable=True),
        sa.Column("total_pieces", sa.Integer, nullable=False),
        sa.Column("completed_pieces", sa.Integer, nullable=False),
        sa.Column("failed_pieces", sa.Integer, nullable=False),
        sa.Column("total_processed", sa.BigInteger, nullable=False),
        sa.Column("total_failures", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_jobs_project_id_projects"
        ),
    )
    op.create_index("ix_jobs_project_id_created_at", "jobs", ["project_id", "created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "job_pieces",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("piece", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("first_row", sa.BigInteger, nullable=True),
        sa.Column("last_row", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("job_id", "piece", name="pk_job_pieces"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_pieces_job_id_jobs"),
    )
    op.create_table(
        "job_rows",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("row", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "row", name="pk_job_rows"),
    )


def downgrade() -> None:
    op.drop_table("job_rows")
    op.drop_table("job_pieces")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_index("ix_jobs_project_id_created_at", table_name="jobs")
    op.drop_table("jobs")
