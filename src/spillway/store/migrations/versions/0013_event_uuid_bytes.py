"""Events keep their id as 16 bytes instead of 36 characters of text.

The (project_id, event_uuid) unique index decides on every ingested event whether it is new;
binary keys make it less than half the size and compare with memcmp instead of a collation.
PostgreSQL converts the column in place (``bytea``; the table and its indexes are rewritten, the
sequence is untouched). SQLite cannot change a column's type, so the table is rebuilt: copied
row by row with its ``seq`` values, and its AUTOINCREMENT high-water mark carried over so a
sequence number is never reused, even one whose event retention already removed. Either way
the table is rewritten once: allow the time and the disk of one more copy of it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COPY = "event_time, event_type, event_name, uid, payload"
_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))  # 8-4-4-4-12 hex digits


def _hyphenated(hex_digits: str) -> str:
    """SQL for the canonical text form of a uuid from its 32 hex digits (SQLite)."""
    parts = [f"substr({hex_digits}, {start}, {size})" for start, size in _GROUPS]
    return "lower(" + " || '-' || ".join(parts) + ")"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE events ALTER COLUMN event_uuid TYPE bytea "
            "USING decode(replace(event_uuid, '-', ''), 'hex')"
        )
        return
    _rebuild(sa.LargeBinary(16), "uuid_bytes(event_uuid)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE events ALTER COLUMN event_uuid TYPE varchar(36) "
            "USING encode(event_uuid, 'hex')::uuid::text"
        )
        return
    _rebuild(sa.String(36), _hyphenated("hex(event_uuid)"))


def _rebuild(uuid_type: sa.types.TypeEngine[Any], convert: str) -> None:
    """SQLite: the events table again with ``event_uuid`` of ``uuid_type``, each row's id
    converted by the SQL expression ``convert``; same seq values, indexes and high-water mark."""
    conn = op.get_bind()
    driver = conn.connection.driver_connection
    # SQLite 3.40 has no unhex(); stored ids all passed ingest's UUID check.
    driver.create_function(  # type: ignore[union-attr]
        "uuid_bytes", 1, lambda text: bytes.fromhex(text.replace("-", "")), deterministic=True
    )
    mark = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'events'").scalar()
    op.create_table(
        "events_new",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", BigId, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("event_time", sa.BigInteger, nullable=False),
        sa.Column("event_uuid", uuid_type, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("event_name", sa.String(256), nullable=False),
        sa.Column("uid", sa.String(256), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("project_id", "event_uuid", name="uq_events_project_id_event_uuid"),
        sqlite_autoincrement=True,
    )
    op.execute(
        f"INSERT INTO events_new (seq, project_id, received_at, event_uuid, {_COPY}) "
        f"SELECT seq, project_id, received_at, {convert}, {_COPY} FROM events ORDER BY seq"
    )
    op.drop_table("events")  # its indexes and its sqlite_sequence row go with it
    op.rename_table("events_new", "events")  # the sqlite_sequence row follows the rename
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_events_project_id_seq", "events", ["project_id", "seq"])
    # The copy set the mark to the highest seq still stored; put back the highest ever issued.
    stored = conn.exec_driver_sql("SELECT max(seq) FROM events").scalar()
    top = max(int(mark or 0), int(stored or 0))
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
    if top:
        op.execute(f"INSERT INTO sqlite_sequence (name, seq) VALUES ('events', {top})")
