"""Endpoints keep their Pinpoint export line (but for ApplicationId), built when written.

Existing endpoints get theirs here, in batches; a row written later by an older version (NULL)
is found through the partial index and built before an export job copies the lines.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MISSING = "pinpoint_head IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("pinpoint_head", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("pinpoint_tail", sa.LargeBinary, nullable=True))
    op.create_index(
        "ix_endpoints_pinpoint_missing",
        "endpoints",
        ["project_id"],
        sqlite_where=sa.text(MISSING),
        postgresql_where=sa.text(MISSING),
    )
    conn = op.get_bind()
    after: tuple[int, str] = (-1, "")
    while True:  # keyset pages over (project, id): bounded memory on a large table
        rows = conn.execute(_PAGE, {"p": after[0], "e": after[1], "n": BATCH}).all()
        if not rows:
            break
        conn.execute(
            sa.text(
                "UPDATE endpoints SET pinpoint_head = :head, pinpoint_tail = :tail "
                "WHERE project_id = :p AND endpoint_id = :e"
            ),
            [_parts(row) for row in rows],
        )
        after = (rows[-1][0], rows[-1][1])


BATCH = 2_000
_COLUMNS = (
    "project_id, endpoint_id, user_id, channel_type, address, endpoint_status, opt_out, "
    "attributes, user_attributes, demographic, location, metrics, effective_date, created_at, "
    "updated_at"
)
_PAGE = sa.text(
    f"SELECT {_COLUMNS} FROM endpoints WHERE (project_id > :p OR "
    "(project_id = :p AND endpoint_id > :e)) ORDER BY project_id, endpoint_id LIMIT :n"
)


def _parts(row: sa.Row[Any]) -> dict[str, Any]:
    """The line parts of a stored row, built by the application's own builder (the format is
    the one the write path uses; there is one definition of it)."""
    from spillway.engine.jobs.shapes import pinpoint_parts
    from spillway.model import Endpoint

    m = dict(row._mapping)
    for name in ("attributes", "user_attributes", "demographic", "location", "metrics"):
        if isinstance(m[name], str | bytes):  # SQLite hands JSON columns back as text
            m[name] = json.loads(m[name])
    head, tail = pinpoint_parts(Endpoint.from_row(m))
    return {"head": head, "tail": tail, "p": m["project_id"], "e": m["endpoint_id"]}


def downgrade() -> None:
    op.drop_index("ix_endpoints_pinpoint_missing", table_name="endpoints")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("pinpoint_tail")
        batch.drop_column("pinpoint_head")
