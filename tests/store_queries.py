"""Read-only queries that only tests need (the application never asks these questions)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.store.schema import audit_log, events, integration_keys


def count_events(conn: Connection, project_id: int | None = None) -> int:
    """How many events are stored, for one project or all."""
    query = sa.select(sa.func.count()).select_from(events)
    if project_id is not None:
        query = query.where(events.c.project_id == project_id)
    return int(conn.execute(query).scalar_one())


def event_uuids(conn: Connection, project_id: int) -> list[bytes]:
    """Every stored uuid of a project in ingest order (16 bytes each, migration 0013)."""
    query = (
        sa.select(events.c.event_uuid)
        .where(events.c.project_id == project_id)
        .order_by(events.c.seq)
    )
    return list(conn.execute(query).scalars())


def high_water(conn: Connection) -> int:
    """The largest committed sequence number (0 when empty)."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())


def sealed_secret(conn: Connection, key_id: str) -> bytes | None:
    """The sealed secret of a live key."""
    return conn.execute(
        sa.select(integration_keys.c.secret_sealed).where(
            integration_keys.c.key_id == key_id, integration_keys.c.revoked_at.is_(None)
        )
    ).scalar_one_or_none()


def audit_entries(conn: Connection, project_id: int | None = None) -> list[dict[str, Any]]:
    """The audit log, newest first."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc())
    if project_id is not None:
        query = query.where(audit_log.c.project_id == project_id)
    return [dict(row._mapping) for row in conn.execute(query)]
