"""Projects, integration keys, events, endpoints and the audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("app_id", name="uq_projects_app_id"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "integration_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_integration_keys"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_integration_keys_project_id_projects"
        ),
    )
    op.create_index("ix_integration_keys_project_id", "integration_keys", ["project_id"])
    op.create_table(
        "events",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("event_time", sa.BigInteger, nullable=False),
        sa.Column("event_uuid", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("event_name", sa.String(256), nullable=False),
        sa.Column("uid", sa.String(256), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("project_id", "event_uuid", name="uq_events_project_id_event_uuid"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_table(
        "endpoints",
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("endpoint_id", sa.String(256), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("channel_type", sa.String(32), nullable=True),
        sa.Column("address", sa.String(512), nullable=True),
        sa.Column("endpoint_status", sa.String(16), nullable=False),
        sa.Column("opt_out", sa.String(16), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("user_attributes", sa.JSON, nullable=False),
        sa.Column("demographic", sa.JSON, nullable=False),
        sa.Column("location", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("effective_date", sa.String(40), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "endpoint_id", name="pk_endpoints"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_endpoints_project_id_projects"
        ),
    )
    op.create_index("ix_endpoints_user_id", "endpoints", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("project_id", BigId, nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_project_id", "audit_log", ["project_id"])
