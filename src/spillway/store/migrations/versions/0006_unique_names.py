"""Names unique by constraint: live destinations per project, live exports per destination.

Until now only the application checked, and two racing requests could both pass the check.
Duplicates already stored are renamed before the indexes are built, never refused: the oldest
keeps its name, later ones become ``name (2)`` (destinations) or ``name-2`` (exports, whose
names must stay path-safe: an export's name is its files' prefix, so a renamed duplicate writes
under its new name from then on — which also stops it writing over the other's files). Each
rename is logged and recorded in the audit log.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)
NAME_LENGTH = 200
LIVE = "deleted_at IS NULL"

destinations = sa.table(
    "destinations",
    sa.column("id", sa.String),
    sa.column("project_id", sa.BigInteger),
    sa.column("name", sa.String),
    sa.column("created_at", sa.BigInteger),
    sa.column("updated_at", sa.BigInteger),
    sa.column("deleted_at", sa.BigInteger),
)
exports = sa.table(
    "exports",
    sa.column("id", sa.String),
    sa.column("project_id", sa.BigInteger),
    sa.column("destination_id", sa.String),
    sa.column("name", sa.String),
    sa.column("created_at", sa.BigInteger),
    sa.column("updated_at", sa.BigInteger),
    sa.column("deleted_at", sa.BigInteger),
)
audit_log = sa.table(
    "audit_log",
    sa.column("at", sa.BigInteger),
    sa.column("project_id", sa.BigInteger),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("target", sa.String),
    sa.column("detail", sa.JSON),
)


def destination_name(name: str, number: int) -> str:
    """``warehouse (2)``."""
    suffix = f" ({number})"
    return name[: NAME_LENGTH - len(suffix)] + suffix


def export_name(name: str, number: int) -> str:
    """``events-2`` (export names are ``[A-Za-z0-9._-]+``)."""
    suffix = f"-{number}"
    return name[: NAME_LENGTH - len(suffix)] + suffix


def rename_duplicates(
    conn: Connection, table: sa.TableClause, group: str, renamed: Callable[[str, int], str]
) -> int:
    """Rename every live row whose (group, name) an older live row already has; returns how
    many were renamed."""
    key, name_col = table.c[group], table.c.name
    duplicated = (
        sa.select(key, name_col)
        .where(table.c.deleted_at.is_(None))
        .group_by(key, name_col)
        .having(sa.func.count() > 1)
    )
    count = 0
    now = time.time_ns() // 1_000_000
    for owner, name in conn.execute(duplicated).all():
        taken = set(
            conn.execute(
                sa.select(name_col).where(key == owner, table.c.deleted_at.is_(None))
            ).scalars()
        )
        rows = conn.execute(
            sa.select(table.c.id, table.c.project_id)
            .where(key == owner, name_col == name, table.c.deleted_at.is_(None))
            .order_by(table.c.created_at, table.c.id)
        ).all()
        for row in rows[1:]:
            number = 2
            while renamed(name, number) in taken:
                number += 1
            new = renamed(name, number)
            taken.add(new)
            conn.execute(
                table.update().where(table.c.id == row.id).values(name=new, updated_at=now)
            )
            conn.execute(
                audit_log.insert().values(
                    at=now,
                    project_id=row.project_id,
                    actor="migration",
                    action=f"{table.name[:-1]}.rename",
                    target=row.id,
                    detail={"from": name, "to": new, "reason": "duplicate name (migration 0006)"},
                )
            )
            log.warning(
                "%s %s was named %r like an older one: renamed %r",
                table.name[:-1],
                row.id,
                name,
                new,
            )
            count += 1
    return count


def upgrade() -> None:
    conn = op.get_bind()
    rename_duplicates(conn, destinations, "project_id", destination_name)
    rename_duplicates(conn, exports, "destination_id", export_name)
    op.create_index(
        "uq_destinations_project_id_name",
        "destinations",
        ["project_id", "name"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.create_index(
        "uq_exports_destination_id_name",
        "exports",
        ["destination_id", "name"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
